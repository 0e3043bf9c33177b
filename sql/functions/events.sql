-- Appending: pge_append(message) and the validation of a message's events.
-- Applied by `jsproj migrate` after the migrations, whenever this file
-- changes (src/jsproj/store/migrate.py): `create or replace` only, with
-- search_path set to the store's schema; inside function bodies @schema@
-- is the quoted schema name (qualified names instead of a SET search_path
-- clause, which costs ~100 us per call). A signature change is a migration
-- that drops the old function.

-- What is wrong with one event of an append message, or null when nothing is.
create or replace function pge_event_problem(e jsonb) returns text
language sql immutable parallel safe
as $$
    select case
        when jsonb_typeof(e) <> 'object' then 'an event is a JSON object with a "$type", not a ' || jsonb_typeof(e)
        when jsonb_typeof(e -> '$type') is distinct from 'string' or e ->> '$type' = ''
            then 'Missing $type in event: every event needs a "$type" string'
                 -- the common slip, named: a "type" key (the message's own key) in the event
                 || case when e ? 'type' and not e ? '$type'
                         then ' (this one has "type": the event''s type is "$type", with a dollar sign)' else '' end
        when length(e ->> '$type') > 255 then 'the event $type is longer than 255 characters'
        -- ($-types are jsproj's: $deleted is a stream's tombstone, docs/lifecycle.md#deleting-a-stream;
        -- $> a link to another stream's event, docs/from-kurrentdb.md#emit-and-linkto)
        when left(e ->> '$type', 1) = '$' and e ->> '$type' not in ('$deleted', '$>') then
            'the event $type ' || (e -> '$type')::text || ' is reserved: types starting with $ are jsproj''s ($deleted: a stream''s tombstone)'
        when e ->> '$type' = '$>' and (jsonb_typeof(e -> 'link') is distinct from 'string' or e ->> 'link' !~ '^[0-9]{1,15}@.')
            then 'a link ($>) has a "link": "<sequence number (at most 15 digits)>@<stream id>", not ' || coalesce((e -> 'link')::text, 'none')
        when coalesce(jsonb_typeof(e -> '$id'), 'null') <> 'null'
             and (jsonb_typeof(e -> '$id') <> 'string'
                  or (e ->> '$id') !~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')
            then 'the event $id must be a UUID, not ' || (e -> '$id')::text
    end
$$;

-- The ids of a message's new events (and of a new stream without an id), in
-- the UUID version-7 layout (RFC 9562): the 48-bit Unix time in ms, the
-- version 7, 12 bits of the sub-millisecond time (from microseconds: ids
-- made later by one server sort later), the variant, then a 62-bit counter
-- that starts at a random value (61 random bits, so adding the event's
-- number never reaches the variant bits) and counts the message's events:
-- the ids increase within a message and with time. Why not random (v4)
-- ids: each new random id lands on a random leaf page of the id index, so
-- at millions of events every append rewrites hundreds of index pages, each
-- written whole to the WAL after a checkpoint (7x the WAL of an empty store
-- at 5M events, most of it that index: bench/scenario_growth.py); ids that
-- increase all go to the index's last page. One clock reading and one
-- random draw per message, not per event.
create or replace function pge_event_ids(count int) returns uuid[]
language plpgsql volatile parallel safe
as $$
declare  -- (PL/pgSQL, not SQL: less than half the cost for one event, ~3 us against ~7 us)
    us bigint := (extract(epoch from clock_timestamp()) * 1000000)::bigint;
    -- (PostgreSQL gives << | & one precedence, left to right: hence the parentheses)
    high text := lpad(to_hex(((us / 1000) << 16) | (7 << 12) | ((us % 1000) * 4096 / 1000)), 16, '0');
    -- the low half of a v4 UUID: its variant bits are v7's, then 62 random bits, the first cleared
    low bigint := ('x' || right(replace(gen_random_uuid()::text, '-', ''), 16))::bit(64)::bigint & ~(1::bigint << 61);
begin
    if count = 1 then
        return array[(high || to_hex(low + 1))::uuid];
    end if;
    return array(select (high || to_hex(low + n))::uuid from generate_series(1, count) as n order by n);
end;
$$;

-- What is wrong with an append message (not its events), or null when nothing is.
-- The fields in range (years 0001-9999, hours 00-23, zones up to 15:59, no
-- leap second) and a day the month has are checked here rather than left to
-- the cast's 22008/22009; js/lib/log.js's isoMilliseconds has the same rule
-- (and normalize the same expected_version rule). CASE keeps the order of its
-- WHENs: make_date only sees a month 01-12, the key check only an object. No
-- subquery and only immutable functions (no format), so that PostgreSQL inlines it into pge_append's expression (a
-- function call would be planned again at every append).
create or replace function pge_message_problem(message jsonb) returns text
language sql immutable parallel safe
as $$
    select case
        when jsonb_typeof(message) is distinct from 'object' then
            'an append message is an object like {"id": ..., "type": ..., "data": [...]}, not '
                || coalesce(jsonb_typeof(message), 'null')
        when message - array['id', 'type', 'data', 'expected_version', 'metadata', 'timestamp'] <> '{}' then
            'unknown field ' || jsonb_path_query_first(message - array['id', 'type', 'data', 'expected_version', 'metadata', 'timestamp'],
                                                       '$.keyvalue().key')::text
                || ' (an append message has id, type, data, expected_version, metadata, timestamp)'
        when jsonb_typeof(message -> 'id') not in ('string', 'null') then 'the stream id must be a string, not a ' || jsonb_typeof(message -> 'id')
        when message ->> 'id' = '' then 'the stream id must not be empty'
        when length(message ->> 'id') > 255 then 'the stream id is longer than 255 characters'
        when jsonb_typeof(message -> 'type') not in ('string', 'null') then 'the stream type must be a string, not a ' || jsonb_typeof(message -> 'type')
        when message ->> 'type' = '' then 'the stream type must not be empty'
        when length(message ->> 'type') > 255 then 'the stream type is longer than 255 characters'
        when coalesce(jsonb_typeof(message -> 'data'), 'null') = 'null' then 'the message has no "data" (an event or a list of events)'
        when jsonb_typeof(message -> 'data') not in ('array', 'object') then
            'an event is a JSON object with a "$type", not a ' || jsonb_typeof(message -> 'data')
        when message -> 'data' = '[]' then '"data" holds no events'
        -- at most 2^53 - 1: a bigint, and a number JavaScript's normalize holds exactly (the same rule)
        when jsonb_typeof(message -> 'expected_version') not in ('number', 'null')
             or (message ->> 'expected_version')::numeric < 0
             or (message ->> 'expected_version')::numeric > 9007199254740991
             or (message ->> 'expected_version')::numeric <> trunc((message ->> 'expected_version')::numeric) then
            'expected_version must be a whole number >= 0 (0: the stream must be new; at most 2^53 - 1), not '
                || (message -> 'expected_version')::text
        when jsonb_typeof(message -> 'metadata') not in ('object', 'null') then
            'metadata must be an object, not a ' || jsonb_typeof(message -> 'metadata')
        when jsonb_typeof(message -> 'timestamp') not in ('string', 'null')
             or (message ->> 'timestamp') !~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$' then
            'timestamp must be an ISO 8601 date-time with a zone (Z or +hh:mm), not ' || (message -> 'timestamp')::text
        when (message ->> 'timestamp') !~ ('^(?!0000)\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d'
                                           '(:[0-5]\d(\.\d+)?)?(Z|[+-](0\d|1[0-5]):[0-5]\d)$') then
            'timestamp must be an ISO 8601 date-time that exists, not ' || (message -> 'timestamp')::text
        when extract(month from make_date(substr(message ->> 'timestamp', 1, 4)::int, substr(message ->> 'timestamp', 6, 2)::int, 1)
                                   + (substr(message ->> 'timestamp', 9, 2)::int - 1)) <> substr(message ->> 'timestamp', 6, 2)::int then
            'timestamp must be an ISO 8601 date-time that exists, not ' || (message -> 'timestamp')::text
        -- In UTC, years 0001-9999 too (what a date-time of Python holds: one outside them is stored, then
        -- unreadable): a zone ahead of UTC takes early hours of 0001-01-01 into year 0; one behind takes late
        -- hours of 9999-12-31 into year 10000, and so does a fraction of the last second that rounds up to
        -- it (PostgreSQL keeps microseconds). (By the fields, not a cast: the cast is only stable.)
        when (left(message ->> 'timestamp', 10) = '0001-01-01' and right(message ->> 'timestamp', 6) like '+%'
              and substr(message ->> 'timestamp', 12, 5) < right(message ->> 'timestamp', 5))
             or (left(message ->> 'timestamp', 10) = '9999-12-31'
                 and (substr(message ->> 'timestamp', 12, 2)::int * 60 + substr(message ->> 'timestamp', 15, 2)::int
                      + case left(right(message ->> 'timestamp', 6), 1)  -- the zone's minutes, behind UTC (none for Z)
                            when '-' then substr(right(message ->> 'timestamp', 5), 1, 2)::int * 60 + right(message ->> 'timestamp', 2)::int
                            when '+' then -(substr(right(message ->> 'timestamp', 5), 1, 2)::int * 60 + right(message ->> 'timestamp', 2)::int)
                            else 0 end
                      -- (the next minute, when the last second's fraction rounds up to it)
                      + (message ->> 'timestamp' ~ '^.{16}:59\.999999[5-9]')::int >= 1440)) then
            'timestamp must be between 0001-01-01 and 9999-12-31 in UTC, not ' || (message -> 'timestamp')::text
        when jsonb_typeof(message -> 'data') = 'array' and jsonb_array_length(message -> 'data') > 1
             and jsonb_path_exists(message -> 'data', '$[*] ? (@."$type" == "$deleted")') then
            'a $deleted event (a stream''s tombstone) is alone in its message'
    end
$$;

-- A message's events as an array (its "data": one event, or a list of them).
-- (|| rather than jsonb_build_array, which is only stable: PostgreSQL inlines
-- an immutable SQL function only when all it calls is immutable.)
create or replace function pge_message_events(message jsonb) returns jsonb
language sql immutable parallel safe
as $$
    select case jsonb_typeof(message -> 'data') when 'object' then '[]'::jsonb || (message -> 'data') else message -> 'data' end
$$;

-- The streams of a batch of checked messages, locked, and the first message
-- that cannot be appended to its stream, as {"n", "problem", "state",
-- "detail"}: a new stream without a type, a type that is not the stream's, an
-- expected version that is not the version the message follows (the stored
-- one plus the events of the batch's earlier messages to that stream); null
-- when there is none. Nothing is written here.
create or replace function pge_stream_problem(messages jsonb) returns jsonb
language plpgsql
as $$
declare
    v_failure jsonb;
begin
    -- Transaction-scoped advisory locks on (1246974036 'JSPT', hash of the id),
    -- taken in one order: two batches never wait on each other in a cycle.
    -- Taken before the versions are read (the next statement: a new snapshot),
    -- so a writer that loses on the expected version burns no position.
    begin
        perform pg_advisory_xact_lock(1246974036, h)
        from (select distinct hashtext(m ->> 'id') as h from jsonb_array_elements(messages) as t (m)
              where m ->> 'id' is not null order by h) as locks;
    exception when out_of_memory then  -- the lock table is full: say why, and what to do
        raise exception using errcode = 'JP413', message = format(
            'the batch appends to %s streams, more locks than PostgreSQL''s lock table has room for '
            '(max_locks_per_transaction = %s): append it in smaller transactions, or raise max_locks_per_transaction',
            (select count(distinct m ->> 'id') from jsonb_array_elements(messages) as t (m)),
            current_setting('max_locks_per_transaction'));
    end;
    with m as (
        select n, coalesce(msg ->> 'id', (@schema@.pge_event_ids(1))[1]::text) as id,  -- (as pge_append makes one: named in an error only)
               msg ->> 'id' is null as unnamed, msg ->> 'type' as type,
               (msg ->> 'expected_version')::numeric::bigint as expected,
               jsonb_array_length(@schema@.pge_message_events(msg)) as count,
               -- (subqueries, not joins: an index lookup per message, never a scan of every stream; the
               -- stream's version and tombstone as its row keeps them, else -- a row from before migration
               -- 0018 -- its last event's: pge_append_message says why)
               (select coalesce(s.version, (select e.version from @schema@.pge_events e where e.stream_id = s.id
                                            order by e.version desc limit 1))
                from @schema@.pge_streams s where s.id = msg ->> 'id') as stored_version,
               (select coalesce(s.deleted, (select e.type = '$deleted' from @schema@.pge_events e where e.stream_id = s.id
                                            order by e.version desc limit 1))
                from @schema@.pge_streams s where s.id = msg ->> 'id') as stored_deleted,
               @schema@.pge_message_events(msg) -> 0 ->> '$type' = '$deleted' as tombstone,
               (select s.type from @schema@.pge_streams s where s.id = msg ->> 'id') as stored_type,
               (select s.archived_at from @schema@.pge_streams s where s.id = msg ->> 'id') as archived_at
        from jsonb_array_elements(messages) with ordinality as t (msg, n)
    ), planned as (
        select n, id, unnamed, type, expected, archived_at, tombstone,
               coalesce(stored_version, 0) + coalesce(sum(count) over earlier, 0) as base,
               -- deleted: by the stream's message before this one in the batch, else as stored
               coalesce(lag(tombstone) over stream, stored_deleted, false) as deleted,
               stored_version is null and row_number() over stream = 1 as creates,
               coalesce(stored_type, first_value(type) over stream) as stream_type
        from m
        window stream as (partition by id order by n),
               earlier as (stream rows between unbounded preceding and 1 preceding)
    ), checked as (
        select n, id, base, creates, case
            when creates and type is null and unnamed then jsonb_build_object('problem', 'a new stream (no "id") needs a "type"')
            when creates and type is null then jsonb_build_object(
                'problem', format('stream %s does not exist yet, so the message needs a "type"', to_json(id)))
            when type <> stream_type then jsonb_build_object(
                'problem', format('stream %s is a %s stream, not %s', to_json(id), stream_type, type))
            when archived_at is not null then jsonb_build_object(
                'problem', format('stream %s is archived: unarchive it to append to it', to_json(id)),
                'state', 'JPS23', 'detail', jsonb_build_object('streamId', id))
            when expected <> base then jsonb_build_object(
                'problem', format('stream %s is at version %s, not the expected version %s', to_json(id), base, expected),
                'state', 'JP409', 'detail', jsonb_build_object('streamId', id, 'expected', expected, 'actual', base))
            -- (the tombstone's rules, as pge_tombstone_check says them)
            when tombstone and creates then jsonb_build_object(
                'problem', format('stream %s does not exist: there is nothing to delete', to_json(id)),
                'state', 'JPS04', 'detail', jsonb_build_object('streamId', id))
            when tombstone and deleted then jsonb_build_object(
                'problem', format('stream %s is deleted already', to_json(id)),
                'state', 'JPS10', 'detail', jsonb_build_object('streamId', id, 'version', base))
            when deleted and not tombstone and expected is null then jsonb_build_object(
                'problem', format('stream %s was deleted (at version %s): append with expected_version %s to re-create it',
                                  to_json(id), base, base),
                'state', 'JPS10', 'detail', jsonb_build_object('streamId', id, 'version', base))
        end || jsonb_build_object('n', n) as failure
        from planned
    )
    select failure into v_failure from checked where failure ? 'problem' order by n limit 1;
    return v_failure;
end;
$$;

-- The DETAIL of an error of a batch's message n: jsproj's details (JSON
-- objects) with "messageNumber": n, and any other detail as {"messageNumber":
-- n, "detail": the text}.
create or replace function pge_numbered_detail(detail text, n int) returns text
language plpgsql immutable
as $$
begin
    if coalesce(detail, '') = '' then
        return json_build_object('messageNumber', n)::text;
    end if;
    if jsonb_typeof(detail::jsonb) = 'object' then
        return (detail::jsonb || jsonb_build_object('messageNumber', n))::text;
    end if;
    return json_build_object('messageNumber', n, 'detail', detail)::text;
exception when others then  -- not JSON (or JSON that jsonb refuses, a \u0000): kept as text, never in the way
    return json_build_object('messageNumber', n, 'detail', detail)::text;
end;
$$;

-- A batch: an array of messages (pge_append's), appended all or nothing.
-- Every message is checked — its fields, its events, its $ids, its stream's
-- type and expected version (counting the batch's earlier messages) — with
-- every stream locked, before any position is taken: a refused message,
-- wherever it is in the batch, uses no position (positions come from a
-- sequence, which a rollback does not give back). The rules are pge_append's
-- for one message, checked for all at once here (pge_message_problem and
-- pge_event_problem are shared; the stream and $id rules are set-based here,
-- one message's there: tests/store/test_store.py checks every bad message both
-- ways). An error's text starts with "message N: " (1 for the first), and
-- its DETAIL holds {"messageNumber": N}.
create or replace function pge_append_batch(messages jsonb) returns jsonb
language plpgsql
as $$
declare
    v_count int := jsonb_array_length(messages);
    v_given_ids boolean;
    v_stored uuid;
    v_failure jsonb;
    v_results jsonb[] := '{}';  -- (an array: appending to a jsonb would copy it each time)
    v_n int;
    v_state text;
    v_text text;
    v_detail text;
    v_hint text;
    v_constraint text;
    v_schema text;
    v_table text;
    v_column text;
    v_datatype text;
begin
    -- Each message and its events: the first message with a problem of its own.
    select (array_agg(jsonb_build_object('n', n, 'problem', p) order by n, k) filter (where p is not null))[1],
           coalesce(bool_or(given_id), false)
    into v_failure, v_given_ids
    from (select n, 0 as k, @schema@.pge_message_problem(m) as p, false as given_id
          from jsonb_array_elements(messages) with ordinality as t (m, n)
          union all
          select n, k, 'event ' || k || ': ' || @schema@.pge_event_problem(e), jsonb_typeof(e -> '$id') = 'string'
          from jsonb_array_elements(messages) with ordinality as t (m, n),
               jsonb_array_elements(@schema@.pge_message_events(m)) with ordinality as u (e, k)
          where @schema@.pge_message_problem(m) is null) as problems;
    if v_failure is null and v_given_ids then
        -- A $id given twice (in one message, or in two of the batch), or already stored.
        select jsonb_build_object('n', n, 'problem', format(case when n = first then 'the event $id %s is used twice in the message'
                                                                else 'the event $id %s is used by an earlier message too' end, i))
        into v_failure
        from (select n, i, min(n) over (partition by i) as first, row_number() over (partition by i order by n, k) as nth
              from jsonb_array_elements(messages) with ordinality as t (m, n),
                   jsonb_array_elements(@schema@.pge_message_events(m)) with ordinality as u (e, k),
                   lower(e ->> '$id') as i
              where jsonb_typeof(e -> '$id') = 'string') as ids
        where nth = 2 order by n limit 1;
        if v_failure is null then
            -- (a partitioned log's $ids locked first, all of the batch's, before its streams: pge_append_message
            -- locks a message's again, in the same order, ids then streams)
            perform @schema@.pge_lock_event_ids(array(
                select lower(e ->> '$id') from jsonb_array_elements(messages) as t (m),
                       jsonb_array_elements(@schema@.pge_message_events(m)) as u (e)
                where jsonb_typeof(e -> '$id') = 'string'));
            -- Planned at each call (EXECUTE): a plan cached while pge_events was small scans the table.
            execute 'select p.id from @schema@.pge_events p where p.id = any ($1) limit 1' into v_stored
            using array(select (e ->> '$id')::uuid
                        from jsonb_array_elements(messages) as t (m), jsonb_array_elements(@schema@.pge_message_events(m)) as u (e)
                        where jsonb_typeof(e -> '$id') = 'string');
            if v_stored is not null then
                select jsonb_build_object('n', n, 'problem', format('an event $id is already stored: %s', v_stored))
                into v_failure
                from jsonb_array_elements(messages) with ordinality as t (m, n),
                     jsonb_array_elements(@schema@.pge_message_events(m)) as u (e)
                where jsonb_typeof(e -> '$id') = 'string' and (e ->> '$id')::uuid = v_stored
                order by n limit 1;
            end if;
        end if;
    end if;
    if v_failure is null then  -- the streams, locked, and what each message follows
        v_failure := @schema@.pge_stream_problem(messages);
    end if;
    if v_failure is not null then
        raise exception using errcode = coalesce(v_failure ->> 'state', 'JP400'),
            message = format('message %s: %s', v_failure -> 'n', v_failure ->> 'problem'),
            detail = @schema@.pge_numbered_detail((v_failure -> 'detail')::text, (v_failure ->> 'n')::int);
    end if;

    -- Everything is checked, and every stream locked: each message is appended
    -- (its checks, pge_append's, pass again). One block for the batch, not one
    -- per message: a subtransaction each would cost every message.
    begin
        for n in 1 .. v_count loop
            v_n := n;
            v_results := array_append(v_results, @schema@.pge_append_message(messages -> (n - 1)));
        end loop;
    exception when others or query_canceled or assert_failure then
        -- an inline projection's error (a sandbox limit too), or a $id another writer stored meanwhile: named
        -- like the checks' errors, with its SQLSTATE and fields (empty where it had none; its CONTEXT is lost)
        get stacked diagnostics v_state = returned_sqlstate, v_text = message_text, v_detail = pg_exception_detail,
                                v_hint = pg_exception_hint, v_constraint = constraint_name, v_schema = schema_name,
                                v_table = table_name, v_column = column_name, v_datatype = pg_datatype_name;
        if v_hint = '' then  -- (an empty HINT would still print)
            raise exception using errcode = v_state, message = format('message %s: %s', v_n, v_text),
                detail = @schema@.pge_numbered_detail(v_detail, v_n), constraint = v_constraint, schema = v_schema,
                table = v_table, column = v_column, datatype = v_datatype;
        end if;
        raise exception using errcode = v_state, message = format('message %s: %s', v_n, v_text),
            detail = @schema@.pge_numbered_detail(v_detail, v_n), hint = v_hint, constraint = v_constraint,
            schema = v_schema, table = v_table, column = v_column, datatype = v_datatype;
    end;
    return to_jsonb(v_results);
end;
$$;

-- The tombstone's rules (docs/lifecycle.md#deleting-a-stream), for the
-- message pge_append_message appends to a stream that is deleted (its last
-- event is $deleted) or that deletes one: nothing to delete (JPS04), deleted
-- already or deleted and not re-created (JPS10). (A function of its own: the
-- common append, on a stream never deleted, does not reach it.)
create or replace function pge_tombstone_check(stream_id text, version bigint, creates boolean, deleted boolean,
                                               tombstone boolean, expected bigint) returns void
language plpgsql
as $$
begin
    if tombstone and creates then
        raise exception using errcode = 'JPS04',
            message = format('stream %s does not exist: there is nothing to delete', to_json(stream_id)),
            detail = json_build_object('streamId', stream_id)::text;
    elsif tombstone and deleted then
        raise exception using errcode = 'JPS10', message = format('stream %s is deleted already', to_json(stream_id)),
            detail = json_build_object('streamId', stream_id, 'version', version)::text;
    elsif deleted and not tombstone and expected is null then
        raise exception using errcode = 'JPS10',
            message = format('stream %s was deleted (at version %s): append with expected_version %s to re-create it',
                             to_json(stream_id), version, version),
            detail = json_build_object('streamId', stream_id, 'version', version)::text;
    end if;
end;
$$;

-- Errors raised here carry SQLSTATE JP400 (a bad message or event) or JP409
-- (the stream is not at the expected version; DETAIL is {"streamId", "expected", "actual"}).
--
-- The append itself. Its callers are the entries below, which pin what it
-- runs under: run as the store's owner, it is not granted to anyone.
--
-- One message, or an array of them: a batch, appended all or nothing
-- (pge_append_batch), returning an array of results.
create or replace function pge_append_message(message jsonb) returns jsonb
language plpgsql
as $$
declare
    v_id text := message ->> 'id';
    v_type text := message ->> 'type';
    v_problem text;
    v_bad int;
    v_ids text[];
    v_duplicate text;
    v_expected bigint;
    v_stream_type text;
    v_deleted boolean;
    v_archived timestamptz;
    v_version bigint;
    v_creates boolean := false;
    v_events jsonb;
    v_count int;
    v_new_ids uuid[];
    v_timestamp timestamptz;
    v_positions jsonb;
    v_last bigint;
begin
    if jsonb_typeof(message) = 'array' then
        return @schema@.pge_append_batch(message);
    end if;
    -- The message. (Few PL/pgSQL expressions on purpose: each one is set up
    -- again in every transaction, which is most of the cost of a small append.)
    v_problem := @schema@.pge_message_problem(message);
    if v_problem is not null then
        raise exception using errcode = 'JP400', message = v_problem;
    end if;
    v_expected := (message ->> 'expected_version')::numeric::bigint;

    -- The events: each a JSON object with a $type; $ids are UUIDs, unique, not stored yet.
    v_events := @schema@.pge_message_events(message);
    v_count := jsonb_array_length(v_events);
    if jsonb_typeof(message -> 'data') = 'object' then
        v_problem := @schema@.pge_event_problem(message -> 'data');
        v_bad := 1;
        if jsonb_typeof(message -> 'data' -> '$id') = 'string' then
            v_ids := array[lower(message -> 'data' ->> '$id')];
        end if;
    else
        select n, @schema@.pge_event_problem(e) into v_bad, v_problem
        from jsonb_array_elements(message -> 'data') with ordinality as t (e, n)
        where @schema@.pge_event_problem(e) is not null
        order by n limit 1;
        v_ids := array(select lower(e ->> '$id') from jsonb_array_elements(message -> 'data') as t (e)
                       where jsonb_typeof(e -> '$id') = 'string');
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
        -- On a partitioned log, whose unique (id) is each partition's, the $ids are locked first
        -- (sql/functions/partitions.sql); on a log of one table, unique (id) stops a concurrent duplicate.
        perform @schema@.pge_lock_event_ids(v_ids);
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
        v_id := (@schema@.pge_event_ids(1))[1]::text;  -- time-ordered too: it goes into two indexes
        v_version := 0;
        v_creates := true;
    else
        perform pg_advisory_xact_lock(1246974036, hashtext(v_id));
        -- The stream's row, by its key: its type, whether it is archived, and its version and whether its
        -- last event is a tombstone, which every append keeps there (below) -- not the stream's last event
        -- read from the log, which on a partitioned log looks in every partition (migration 0018).
        select s.type, s.archived_at, s.version, s.deleted into v_stream_type, v_archived, v_version, v_deleted
        from @schema@.pge_streams s where s.id = v_id;
        if found and v_version is null then
            -- (a stream from before migration 0018, or loaded into the tables by hand: its last event, once)
            select e.version, e.type = '$deleted' into v_version, v_deleted
            from @schema@.pge_events e where e.stream_id = v_id order by e.version desc limit 1;
        end if;
        if v_version is null then
            if v_type is null then
                raise exception using errcode = 'JP400',
                    message = format('stream %s does not exist yet, so the message needs a "type"', to_json(v_id));
            end if;
            v_version := 0;
            v_creates := true;
        else
            if v_type <> v_stream_type then
                raise exception using errcode = 'JP400',
                    message = format('stream %s is a %s stream, not %s', to_json(v_id), v_stream_type, v_type);
            end if;
            -- (docs/lifecycle.md: an archived stream takes no events, read above with the stream's lock held.)
            -- A transaction of repeatable read or serializable read the row in its own snapshot, which may predate
            -- an append or an archive that committed before the stream's lock was granted: it locks the row as
            -- well, which fails (40001, to be retried) when the row changed since its snapshot.
            if current_setting('transaction_isolation') <> 'read committed' then
                perform from @schema@.pge_streams where id = v_id for share;
                -- (on a partitioned log its version could be in a partition no unique index spans with the new one's)
                perform @schema@.pge_log_read_committed();
            end if;
            if v_archived is not null then
                raise exception using errcode = 'JPS23',
                    message = format('stream %s is archived: unarchive it to append to it', to_json(v_id)),
                    detail = json_build_object('streamId', v_id)::text;
            end if;
        end if;
    end if;
    if v_expected <> v_version then
        raise exception using errcode = 'JP409',
            message = format('stream %s is at version %s, not the expected version %s', to_json(v_id), v_version, v_expected),
            detail = json_build_object('streamId', v_id, 'expected', v_expected, 'actual', v_version)::text;
    end if;
    -- A stream's tombstone ($deleted, alone in its message: pge_message_problem) goes on a stream that is
    -- there and not deleted; after it, only a message that gives the tombstone's version as its expected
    -- version re-creates the stream (docs/lifecycle.md#deleting-a-stream).
    if v_deleted or v_events -> 0 ->> '$type' = '$deleted' then
        perform @schema@.pge_tombstone_check(v_id, v_version, v_creates, coalesce(v_deleted, false),
                                             v_events -> 0 ->> '$type' = '$deleted', v_expected);
    end if;

    -- The stream's version and whether its last event is a tombstone, on its row (read above by the next append).
    if v_creates then
        insert into @schema@.pge_streams (id, type, version, deleted)
        values (v_id, v_type, v_count, v_events -> (v_count - 1) ->> '$type' = '$deleted');
        v_stream_type := v_type;
    else
        update @schema@.pge_streams set version = v_version + v_count, deleted = v_events -> (v_count - 1) ->> '$type' = '$deleted'
        where id = v_id;
    end if;
    -- A partitioned log gets its next partitions ahead of need (sql/functions/partitions.sql), looked at before
    -- the insert of a message of more than 64 events, or of one that takes the position sequence across a
    -- multiple of 64 (its last value, which an append that failed moved too: a log that ran past its partitions,
    -- when a transaction held the making of the next, gets them at the next look, without the owner).
    -- (The insert's lock, taken first: the conversion to a partitioned log (pge_log_switch) replaces the table
    -- and its identity sequence; an append that waits for it here then reads the new sequence, where one that
    -- waited at the old sequence would find it dropped.)
    lock table only @schema@.pge_events in row exclusive mode;  -- (only: its partitions are the insert's to lock)
    v_last := coalesce(pg_sequence_last_value(pg_get_serial_sequence('@schema@.pge_events', 'position')), 0);
    if v_count > 64 or (v_last + v_count) / 64 <> v_last / 64 then
        perform @schema@.pge_log_extend(v_last, v_count);
    end if;
    v_new_ids := @schema@.pge_event_ids(v_count);  -- for the events without a $id
    v_timestamp := coalesce((message ->> 'timestamp')::timestamptz, now());
    if v_count = 1 then  -- the common single-event append: a plain INSERT ... VALUES
        insert into @schema@.pge_events (id, stream_id, stream_type, version, type, data, metadata, timestamp)
        values (coalesce((v_events -> 0 ->> '$id')::uuid, v_new_ids[1]), v_id, v_stream_type, v_version + 1, v_events -> 0 ->> '$type',
                (v_events -> 0) - array['$type', '$id'], nullif(message -> 'metadata', 'null'), v_timestamp)
        returning jsonb_build_array(position) into v_positions;
    else
        with inserted as (
            insert into @schema@.pge_events (id, stream_id, stream_type, version, type, data, metadata, timestamp)
            select coalesce((e ->> '$id')::uuid, v_new_ids[n]), v_id, v_stream_type, v_version + n, e ->> '$type',
                   e - array['$type', '$id'], nullif(message -> 'metadata', 'null'), v_timestamp
            from jsonb_array_elements(v_events) with ordinality as t (e, n)
            order by n
            returning position
        )
        select jsonb_agg(position order by position) into v_positions from inserted;
    end if;
    return jsonb_build_object('streamId', v_id, 'version', v_version + v_count, 'positions', v_positions);
end;
$$;

revoke execute on function pge_append_message(jsonb) from public;

-- The application's entry (docs/security.md). Least privilege: an
-- application role granted only EXECUTE on pge_append (and SELECT on the
-- view tables it reads) can append; the append, the inline projections it
-- runs and the documents they write act with the rights of the store's
-- owner, and projection code has none (it never reaches SQL:
-- sql/engines/javascript.sql). So nothing a session can set may change what
-- runs here or its limits: search_path is pinned (every jsproj name in these
-- functions is schema-qualified, and a caller's functions or operators in
-- pg_temp come last); pge_pin_settings (sql/functions/security.sql) adds the
-- settings of the JavaScript languages installed (plv8.start_proc, the time
-- and memory limits...), which exist once their libraries are loaded.
-- (`create or replace` resets what it does not say: the schema script pins
-- them again after every functions file.) The guard of Python-engine inline
-- projections reads jsproj.inline_engine (sql/functions/inline.sql): the
-- entry sets it first, so what a session set never reaches the guard (a
-- function's SET clause cannot carry it: PostgreSQL lets only superusers put
-- a setting no library defines there).
create or replace function pge_append(message jsonb) returns jsonb
language plpgsql
security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('jsproj.inline_engine', '', true);
    perform @schema@.pge_refuse_emit_metadata(message);
    return @schema@.pge_append_message(message);
end;
$$;

-- Running as the owner, it must not be everyone's: PostgreSQL grants EXECUTE
-- on new functions to PUBLIC, and (in schema public) every role has USAGE.
-- The owner keeps it; other roles that append are granted it
-- (docs/deploy.md#privileges). Repeating the revoke is harmless.
revoke execute on function pge_append(jsonb) from public;

comment on function pge_append(jsonb) is
    'jsproj: append one message {"id", "type", "data": [events], "expected_version", "metadata", "timestamp"} and return {"streamId", "version", "positions"}; or an array of them, all or nothing, and return an array of results';

-- The Python engine's entry: an append whose Python-engine inline
-- projections the caller applies itself, in the same transaction
-- (src/jsproj/store/appending.py). The guard lets it through because this
-- function sets jsproj.inline_engine to 'python' for the append (and back);
-- only roles granted EXECUTE on it (those that run the Python engine, with
-- write on the document tables: docs/deploy.md#privileges) can append that way.
create or replace function pge_append_unapplied(message jsonb) returns jsonb
language plpgsql
security definer set search_path = pg_catalog, pg_temp
as $$
declare
    v_result jsonb;
begin
    perform set_config('jsproj.inline_engine', 'python', true);
    perform @schema@.pge_refuse_emit_metadata(message);
    v_result := @schema@.pge_append_message(message);
    perform set_config('jsproj.inline_engine', '', true);
    return v_result;
end;
$$;

revoke execute on function pge_append_unapplied(jsonb) from public;

comment on function pge_append_unapplied(jsonb) is
    'jsproj: pge_append for the Python engine, which applies its inline projections to the appended events itself, in the same transaction';
