-- Appending: pge_append(message) and the validation of a message's events.
-- Applied by `jsproj migrate` after the migrations, whenever this file
-- changes (src/jsproj/migrate.py): `create or replace` only, with
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
        when length(e ->> '$type') > 255 then 'the event $type is longer than 255 characters'
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

-- Errors raised here carry SQLSTATE JP400 (a bad message or event) or JP409
-- (the stream is not at the expected version; DETAIL is {"streamId", "expected", "actual"}).
--
-- Least privilege (docs/deploy.md): an application role granted only
-- EXECUTE on pge_append (and SELECT on the view tables it reads) can append;
-- the append, the inline projections it runs and the documents they write
-- act with the rights of the store's owner, and projection code has none
-- (it never reaches SQL: sql/engines/javascript.sql). search_path is pinned
-- so that a caller cannot put its own functions or operators in front of
-- PostgreSQL's (every jsproj name in these functions is schema-qualified).
-- (Both are stated here: `create or replace` resets what it does not say.)
create or replace function pge_append(message jsonb) returns jsonb
language plpgsql
security definer set search_path = pg_catalog, pg_temp
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
    v_new_ids uuid[];
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
        -- Fields in range (years 0001-9999, hours 00-23, zones up to 15:59, no leap second) and a day
        -- the month has, checked here rather than left to the cast's 22008/22009; js/lib/log.js's
        -- isoMilliseconds has the same rule. Two WHENs: CASE keeps their order, so make_date only
        -- sees a month 01-12.
        when (message ->> 'timestamp') !~ ('^(?!0000)\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d'
                                           '(:[0-5]\d(\.\d+)?)?(Z|[+-](0\d|1[0-5]):[0-5]\d)$') then
            'timestamp must be an ISO 8601 date-time that exists, not ' || (message -> 'timestamp')::text
        when extract(month from make_date(substr(message ->> 'timestamp', 1, 4)::int, substr(message ->> 'timestamp', 6, 2)::int, 1)
                                   + (substr(message ->> 'timestamp', 9, 2)::int - 1)) <> substr(message ->> 'timestamp', 6, 2)::int then
            'timestamp must be an ISO 8601 date-time that exists, not ' || (message -> 'timestamp')::text
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
        v_id := (@schema@.pge_event_ids(1))[1]::text;  -- time-ordered too: it goes into two indexes
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

    v_new_ids := @schema@.pge_event_ids(v_count);  -- for the events without a $id
    if v_count = 1 then  -- the common single-event append: a plain INSERT ... VALUES
        insert into @schema@.pge_events (id, stream_id, version, type, data, metadata, timestamp)
        values (coalesce((v_events -> 0 ->> '$id')::uuid, v_new_ids[1]), v_id, v_version + 1, v_events -> 0 ->> '$type',
                (v_events -> 0) - array['$type', '$id'], v_metadata, v_timestamp)
        returning jsonb_build_array(position) into v_positions;
    else
        with inserted as (
            insert into @schema@.pge_events (id, stream_id, version, type, data, metadata, timestamp)
            select coalesce((e ->> '$id')::uuid, v_new_ids[n]), v_id, v_version + n, e ->> '$type',
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

-- Running as the owner, it must not be everyone's: PostgreSQL grants EXECUTE
-- on new functions to PUBLIC, and (in schema public) every role has USAGE.
-- The owner keeps it; other roles that append are granted it
-- (docs/deploy.md#privileges). Repeating the revoke is harmless.
revoke execute on function pge_append(jsonb) from public;

comment on function pge_append(jsonb) is
    'jsproj: append one message {"id", "type", "data": [events], "expected_version", "metadata", "timestamp"}; returns {"streamId", "version", "positions"}';
