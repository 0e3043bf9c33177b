-- Events as engine records: pge_event_record (one row's JSON text) and
-- pge_records(), the one definition of the events-with-their-stream's-type
-- read that every page, rebuild and lookup of records selects from.
-- Applied by `jsproj migrate` after the migrations, whenever this file
-- changes (src/jsproj/store/migrate.py): `create or replace` only, with
-- search_path set to the store's schema; inside function bodies @schema@
-- is the quoted schema name (qualified names instead of a SET search_path
-- clause, which costs ~100 us per call). A signature change is a migration
-- that drops the old function.

-- The engine record (JSON text) of an event row and its stream's type.
-- Built by text concatenation: twice as fast as json_build_object for large pages.
-- The event is {"$type", "$id", ...data}: data's text with its opening brace replaced.
-- Stable, as what it calls is (concat, to_json, to_char): PostgreSQL inlines
-- an SQL function only when its body is no more volatile than it says, and a
-- call it does not inline runs the SQL function machinery per event (declared
-- immutable, it was half the cost of building a page of records).
create or replace function pge_event_record(r_position bigint, r_stream_id text, r_stream_type text, r_version bigint,
                                 r_timestamp timestamptz, r_metadata jsonb, r_type text, r_id uuid, r_data jsonb)
returns text
language sql stable parallel safe
as $$
    select concat(
        '{"position":', r_position, ',"streamId":', to_json(r_stream_id), ',"streamType":', to_json(r_stream_type),
        ',"version":', r_version,
        ',"timestamp":"', to_char(r_timestamp at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        '","metadata":', coalesce(r_metadata::text, 'null'),
        ',"event":{"$type":', to_json(r_type), ',"$id":"', r_id, '"',
        case when r_data = '{}'::jsonb then '}' else ',' || substr(r_data::text, 2) end, '}')
$$;

-- Every event of a stream that is not archived, with its stream's type, and
-- its engine record: the one definition of that read. Callers select from it and add their own
-- condition, order and limit: a page in the order readers see, `where
-- (tx_id, position) > (...) order by tx_id, position limit n` (the index
-- pge_events_tx_order), or events by position (the primary key). A
-- `language sql stable` function of one SELECT, without SET or SECURITY
-- DEFINER: the planner inlines it into the caller's query like a view, so
-- conditions reach the indexes and a record no caller selects is never built
-- (tests/store/test_migrations.py checks the plans).
create or replace function pge_records()
returns table (tx_id xid8, "position" bigint, id uuid, stream_id text, stream_type text, version bigint, type text,
               data jsonb, metadata jsonb, "timestamp" timestamptz, record text)
language sql stable parallel safe
as $$
    select e.tx_id, e.position, e.id, e.stream_id, s.type, e.version, e.type, e.data, e.metadata, e.timestamp,
           @schema@.pge_event_record(e.position, e.stream_id, s.type, e.version, e.timestamp, e.metadata, e.type, e.id,
                                     e.data)
    from @schema@.pge_events e join @schema@.pge_streams s on s.id = e.stream_id
    -- Archived streams are left out of every read of records (docs/lifecycle.md). As an anti-join, not
    -- `s.archived_at is null`: without statistics on pge_streams (a new store, a bulk load) the planner takes
    -- that for 0.5 % of the rows, and pages stopped using the (tx_id, position) index with their limit (30x
    -- slower builds, bench/ab.py).
    where not exists (select from @schema@.pge_streams a where a.id = e.stream_id and a.archived_at is not null)
$$;

-- The end of the log as a gap-safe reader sees it now: the last event, in
-- (transaction, position) order, of the transactions older than every
-- running one, so that no event committed later comes before it; no row
-- when there is none. The one place in SQL that says the gap-safe condition
-- (src/jsproj/store/log.py says it once in Python, for every page reader).
create or replace function pge_log_end() returns table (tx_id xid8, "position" bigint)
language sql stable
as $$
    select e.tx_id, e.position from @schema@.pge_events e
    where e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
    order by e.tx_id desc, e.position desc
    limit 1
$$;
