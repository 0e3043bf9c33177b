-- Look events and documents up by index, whatever the table's size when a
-- session first ran the statement. `x in (select jsonb_array_elements...)`
-- let the planner hash-join a whole table, and a plan PL/pgSQL cached while
-- pge_events was small keeps scanning it after it has grown (until an
-- ANALYZE): statements that find events by key are planned at each call
-- (EXECUTE) or driven by the keys (correlated lookups by id).


create or replace function pge_append_records(message jsonb, out result jsonb, out records text,
                                              out generation bigint, out documents jsonb)
language plpgsql
as $$
declare
    v_projections text[];
    v_positions bigint[];
begin
    perform set_config('jsproj.inline_engine', 'python', true);
    result := @schema@.pge_append(message);
    v_positions := array(select jsonb_array_elements_text(result -> 'positions')::bigint);
    v_projections := array(select name from @schema@.pge_projection_definitions
                           where lifecycle = 'inline' and engine = 'python');
    -- Planned at each call (EXECUTE): a plan PL/pgSQL cached while pge_events was small would
    -- scan the whole table at every append once it has grown.
    execute $q$
    select '[' || string_agg(@schema@.pge_event_record(e.position, e.stream_id, s.type, e.version, e.timestamp,
                                                       e.metadata, e.type, e.id, e.data), ',' order by e.position) || ']',
           @schema@.pge_load_documents(@schema@.pge_route(array_agg(e.stream_id), array_agg(s.type), array_agg(e.type),
                                                          $2))
    from @schema@.pge_events e join @schema@.pge_streams s on s.id = e.stream_id
    where e.position = any ($1)
    $q$ into records, documents using v_positions, v_projections;
    select g.generation into generation from @schema@.pge_engine g;
end;
$$;

create or replace function pge_write_changes(changes jsonb) returns void
language plpgsql
as $$
declare
    v_name text;
    v_change jsonb;
    v_table text;
begin
    for v_name, v_change in select * from jsonb_each(changes) loop
        v_table := @schema@.pge_document_table(v_name);
        if v_table is null then
            raise exception using errcode = 'JP404', message = format('there is no deployed projection %s', v_name);
        end if;
        if v_table = 'pge_aggregates' then
            insert into @schema@.pge_aggregates as a (name, data)
            select key, value from jsonb_each(v_change -> 'upserts')
            on conflict (name) do update set data = excluded.data, updated_at = now();
            delete from @schema@.pge_aggregates
            where name = any (array(select jsonb_array_elements_text(v_change -> 'deletes')));
        else  -- dynamic SQL is planned at every execution: run only what there is to do
            if v_change -> 'upserts' <> '{}' then
                execute format('insert into @schema@.%I as d (id, data) select key, value from jsonb_each($1)
                                on conflict (id) do update set data = excluded.data, updated_at = now()', v_table)
                    using v_change -> 'upserts';
            end if;
            if v_change -> 'deletes' <> '[]' then
                execute format('delete from @schema@.%I where id = any (array(select jsonb_array_elements_text($1)))',
                               v_table)
                    using v_change -> 'deletes';
            end if;
        end if;
    end loop;
end;
$$;

create or replace function pge_load_documents(keys jsonb) returns jsonb
language plpgsql
as $$
declare
    v_name text;
    v_ids jsonb;
    v_table text;
    v_found jsonb;
    v_documents jsonb := '{}';
begin
    perform pg_advisory_xact_lock(1246974037, k.lock)
    from (select distinct hashtext(n || chr(31) || i) as lock
          from jsonb_each(keys) as t (n, ids), jsonb_array_elements_text(ids) as i) as k
    order by k.lock;
    for v_name, v_ids in select * from jsonb_each(keys) loop
        v_table := @schema@.pge_document_table(v_name);
        if v_table is null then
            raise exception using errcode = 'JP404', message = format('there is no deployed projection %s', v_name);
        end if;
        if v_table = 'pge_aggregates' then
            select jsonb_object_agg(k, (select a.data from @schema@.pge_aggregates a where a.name = k)) into v_found
            from jsonb_array_elements_text(v_ids) as k;
        else  -- one index lookup per id, whatever the planner guesses of the table's size
            execute format('select jsonb_object_agg(k, (select d.data from @schema@.%I d where d.id = k))
                            from jsonb_array_elements_text($1) as k', v_table)
                into v_found using v_ids;
        end if;
        v_documents := v_documents || jsonb_build_object(v_name, coalesce(v_found, '{}'));
    end loop;
    return v_documents;
end;
$$;

create or replace function pge_append(message jsonb) returns jsonb
language plpgsql
as $$
declare
    v_key text;
    v_id text := message ->> 'id';
    v_type text := message ->> 'type';
    v_events jsonb;
    v_count int;
    v_problem text;
    v_bad int;
    v_ids text[];
    v_duplicate text;
    v_expected bigint;
    v_metadata jsonb;
    v_timestamp timestamptz := now();
    v_stream_type text;
    v_version bigint;
    v_positions jsonb;
begin
    -- The message. (Few PL/pgSQL expressions on purpose: each one is set up
    -- again in every transaction, which is most of the cost of a small append.)
    if jsonb_typeof(message) is distinct from 'object' then
        raise exception using errcode = 'JP400',
            message = 'an append message is an object like {"id": ..., "type": ..., "data": [...]}, not '
                || coalesce(jsonb_typeof(message), 'null');
    end if;
    select k into v_key from jsonb_object_keys(message) as k
    where k <> all (array['id', 'type', 'data', 'expected_version', 'metadata', 'timestamp']) limit 1;
    if found then
        raise exception using errcode = 'JP400', message = format(
            'unknown field %s (an append message has id, type, data, expected_version, metadata, timestamp)', to_json(v_key));
    end if;
    v_problem := case
        when jsonb_typeof(message -> 'id') not in ('string', 'null') then 'the stream id must be a string, not a ' || jsonb_typeof(message -> 'id')
        when v_id = '' then 'the stream id must not be empty'
        when length(v_id) > 255 then 'the stream id is longer than 255 characters'
        when jsonb_typeof(message -> 'type') not in ('string', 'null') then 'the stream type must be a string, not a ' || jsonb_typeof(message -> 'type')
        when v_type = '' then 'the stream type must not be empty'
        when length(v_type) > 255 then 'the stream type is longer than 255 characters'
        when coalesce(jsonb_typeof(message -> 'data'), 'null') = 'null' then 'the message has no "data" (an event or a list of events)'
        when jsonb_typeof(message -> 'data') not in ('array', 'object') then
            'an event is a JSON object with a "$type", not a ' || jsonb_typeof(message -> 'data')
        when message -> 'data' = '[]' then '"data" holds no events'
        when jsonb_typeof(message -> 'expected_version') not in ('number', 'null')
             or (message ->> 'expected_version')::numeric < 0
             or (message ->> 'expected_version')::numeric <> trunc((message ->> 'expected_version')::numeric) then
            'expected_version must be a whole number >= 0 (0: the stream must be new), not ' || (message -> 'expected_version')::text
        when jsonb_typeof(message -> 'metadata') not in ('object', 'null') then
            'metadata must be an object, not a ' || jsonb_typeof(message -> 'metadata')
        when jsonb_typeof(message -> 'timestamp') not in ('string', 'null')
             or (message ->> 'timestamp') !~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$' then
            'timestamp must be an ISO 8601 date-time with a zone (Z or +hh:mm), not ' || (message -> 'timestamp')::text
    end;
    if v_problem is not null then
        raise exception using errcode = 'JP400', message = v_problem;
    end if;
    v_expected := (message ->> 'expected_version')::numeric::bigint;
    v_metadata := nullif(message -> 'metadata', 'null');
    v_timestamp := coalesce((message ->> 'timestamp')::timestamptz, v_timestamp);

    -- The events: each a JSON object with a $type; $ids are UUIDs, unique, not stored yet.
    if jsonb_typeof(message -> 'data') = 'object' then
        v_events := jsonb_build_array(message -> 'data');
        v_count := 1;
        v_problem := @schema@.pge_event_problem(message -> 'data');
        v_bad := 1;
        if jsonb_typeof(message -> 'data' -> '$id') = 'string' then
            v_ids := array[lower(message -> 'data' ->> '$id')];
        end if;
    else
        v_events := message -> 'data';
        v_count := jsonb_array_length(v_events);
        select n, @schema@.pge_event_problem(e) into v_bad, v_problem
        from jsonb_array_elements(v_events) with ordinality as t (e, n)
        where @schema@.pge_event_problem(e) is not null
        order by n limit 1;
        v_ids := array(select lower(e ->> '$id') from jsonb_array_elements(v_events) as t (e) where jsonb_typeof(e -> '$id') = 'string');
        if v_problem is null then
            select i into v_duplicate from unnest(v_ids) as u (i) group by i having count(*) > 1 limit 1;
            if found then
                raise exception using errcode = 'JP400', message = format('the event $id %s is used twice in the message', v_duplicate);
            end if;
        end if;
    end if;
    if v_problem is not null then
        raise exception using errcode = 'JP400', message = format('event %s: %s', v_bad, v_problem);
    end if;
    if cardinality(v_ids) > 0 then
        -- Planned at each call (EXECUTE): a plan cached while pge_events was small scans the table.
        execute 'select p.id::text from @schema@.pge_events p where p.id = any ($1::uuid[]) limit 1'
            into v_duplicate using v_ids;
        if v_duplicate is not null then
            raise exception using errcode = 'JP400', message = format('an event $id is already stored: %s', v_duplicate);
        end if;
    end if;

    -- The stream: lock it (or create it) before any position is taken, so a
    -- writer that loses on the expected version burns no position. The lock is
    -- a transaction-scoped advisory lock on (1246974036 'JSPT', hash of the id).
    if v_id is null then
        if v_type is null then
            raise exception using errcode = 'JP400', message = 'a new stream (no "id") needs a "type"';
        end if;
        v_id := gen_random_uuid()::text;
        insert into @schema@.pge_streams (id, type) values (v_id, v_type);
        v_version := 0;
    else
        perform pg_advisory_xact_lock(1246974036, hashtext(v_id));
        -- a stream always has events (both are written here, together)
        select version into v_version from @schema@.pge_events where stream_id = v_id order by version desc limit 1;
        if not found then
            if v_type is null then
                raise exception using errcode = 'JP400',
                    message = format('stream %s does not exist yet, so the message needs a "type"', to_json(v_id));
            end if;
            insert into @schema@.pge_streams (id, type) values (v_id, v_type);
            v_version := 0;
        elsif v_type is not null then
            select type into v_stream_type from @schema@.pge_streams where id = v_id;
            if v_type <> v_stream_type then
                raise exception using errcode = 'JP400',
                    message = format('stream %s is a %s stream, not %s', to_json(v_id), v_stream_type, v_type);
            end if;
        end if;
    end if;
    if v_expected <> v_version then
        raise exception using errcode = 'JP409',
            message = format('stream %s is at version %s, not the expected version %s', to_json(v_id), v_version, v_expected),
            detail = json_build_object('streamId', v_id, 'expected', v_expected, 'actual', v_version)::text;
    end if;

    if v_count = 1 then  -- the common single-event append: a plain INSERT ... VALUES
        insert into @schema@.pge_events (id, stream_id, version, type, data, metadata, timestamp)
        values (coalesce((v_events -> 0 ->> '$id')::uuid, gen_random_uuid()), v_id, v_version + 1, v_events -> 0 ->> '$type',
                (v_events -> 0) - array['$type', '$id'], v_metadata, v_timestamp)
        returning jsonb_build_array(position) into v_positions;
    else
        with inserted as (
            insert into @schema@.pge_events (id, stream_id, version, type, data, metadata, timestamp)
            select coalesce((e ->> '$id')::uuid, gen_random_uuid()), v_id, v_version + n, e ->> '$type',
                   e - array['$type', '$id'], v_metadata, v_timestamp
            from jsonb_array_elements(v_events) with ordinality as t (e, n)
            order by n
            returning position
        )
        select jsonb_agg(position order by position) into v_positions from inserted;
    end if;
    return jsonb_build_object('streamId', v_id, 'version', v_version + v_count, 'positions', v_positions);
end;
$$;
