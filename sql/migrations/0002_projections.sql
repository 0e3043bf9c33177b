-- Deployed projections and their documents, and the SQL every engine shares:
-- loading and writing documents, the inline trigger, rebuilds, deployment.
-- Only pge_engine_call(op, payload) differs between engines (plpython3u,
-- plv8): it is created by deploy from sql/engines/<language>.sql.

create table pge_projection_definitions (
    name        text primary key check (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,46}$'),
    kind        text not null check (kind in ('stream', 'event', 'aggregate', 'view')),
    lifecycle   text not null check (lifecycle in ('inline', 'async', 'live')),
    engine      text not null check (engine in ('python', 'plpython', 'plv8')),
    file        text not null,
    source      text not null,
    hash        text not null,
    stream_type text,
    event_types text[] not null default '{}',
    any_event   boolean not null default false,
    deployed_at timestamptz not null default now()
);
create unique index pge_projection_definitions_lower_name on pge_projection_definitions (lower(name));

-- The documents of every aggregate, by name. Other projections get a table
-- each: pge_projections_<name in lower case> (id, data, updated_at).
create table pge_aggregates (
    name        text primary key,
    data        jsonb not null,
    updated_at  timestamptz not null default now()
);

-- The engine bundle the in-database hosts evaluate, and a generation that
-- every deploy moves, so that a host reloads when the definitions change.
create table pge_engine (
    singleton   boolean primary key default true check (singleton),
    bundle      text not null default '',
    bundle_hash text not null default '',
    generation  bigint not null default 0
);
insert into pge_engine default values;

-- The table holding a projection's documents.
create function pge_document_table(projection text) returns text
language sql stable
as $$
    select case d.kind when 'aggregate' then 'pge_aggregates' else 'pge_projections_' || lower(d.name) end
    from @schema@.pge_projection_definitions d where d.name = projection
$$;

-- The documents a batch touches, for projections routed by rule: a stream
-- projection touches the stream's document, an aggregate its one document.
-- Returns {name: [ids]} like the engine's route (which the engine's tests
-- compare it with); views are routed by the engine (their identifiedBy), and
-- event projections load nothing.
create function pge_route(stream_ids text[], stream_types text[], event_types text[], projections text[]) returns jsonb
language sql stable
as $$
    select coalesce(jsonb_object_agg(k.name, k.ids), '{}')
    from (select d.name, jsonb_agg(distinct case d.kind when 'stream' then r.stream_id else d.name end) as ids
          from unnest(stream_ids, stream_types, event_types) as r (stream_id, stream_type, event_type)
          join @schema@.pge_projection_definitions d
            on d.name = any (projections)
           and ((d.kind = 'stream' and d.stream_type = r.stream_type)
                or (d.kind = 'aggregate' and (d.any_event or r.event_type = any (d.event_types))))
          group by d.name) as k
$$;

-- Lock and load the documents named by a route answer ({name: [ids]}):
-- returns {name: {id: document or null}}. Locks are transaction advisory
-- locks on (1246974037, hash of name and id), taken in one global order so
-- that concurrent appends never deadlock; they also cover documents that do
-- not exist yet, which row locks cannot.
create function pge_load_documents(keys jsonb) returns jsonb
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
            select jsonb_object_agg(k, a.data) into v_found
            from jsonb_array_elements_text(v_ids) as k left join @schema@.pge_aggregates a on a.name = k;
        else
            execute format('select jsonb_object_agg(k, d.data) from jsonb_array_elements_text($1) as k
                            left join @schema@.%I d on d.id = k', v_table)
                into v_found using v_ids;
        end if;
        v_documents := v_documents || jsonb_build_object(v_name, coalesce(v_found, '{}'));
    end loop;
    return v_documents;
end;
$$;

-- Write an apply answer's changes: {name: {kind, upserts: {id: document}, deletes: [ids]}}.
create function pge_write_changes(changes jsonb) returns void
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
            delete from @schema@.pge_aggregates where name in (select jsonb_array_elements_text(v_change -> 'deletes'));
        else  -- dynamic SQL is planned at every execution: run only what there is to do
            if v_change -> 'upserts' <> '{}' then
                execute format('insert into @schema@.%I as d (id, data) select key, value from jsonb_each($1)
                                on conflict (id) do update set data = excluded.data, updated_at = now()', v_table)
                    using v_change -> 'upserts';
            end if;
            if v_change -> 'deletes' <> '[]' then
                execute format('delete from @schema@.%I where id in (select jsonb_array_elements_text($1))', v_table)
                    using v_change -> 'deletes';
            end if;
        end if;
    end loop;
end;
$$;

-- An engine answer's result, or the engine's error raised as SQLSTATE JP500
-- with the error (kind, projection, event, stack...) as DETAIL.
create function pge_engine_result(answer text) returns jsonb
language plpgsql
as $$
declare
    v_answer jsonb := answer::jsonb;
    v_log jsonb;
begin
    if v_answer ? 'logs' then
        for v_log in select * from jsonb_array_elements(v_answer -> 'logs') loop
            raise notice '[%] %', coalesce(v_log ->> 'projection', v_log ->> 'file', 'projections'), v_log ->> 'message';
        end loop;
    end if;
    if v_answer ? 'error' then
        raise exception using errcode = 'JP500', message = v_answer -> 'error' ->> 'message',
            detail = (v_answer -> 'error')::text;
    end if;
    return v_answer -> 'ok';
end;
$$;

-- Apply a batch of engine records (JSON text, in order) to some projections
-- with the in-database engine: route the views (the rest comes routed, see
-- pge_route), lock and load, apply, write. One engine call without views.
create function pge_apply_records(records text, routed jsonb, projections text[]) returns void
language plpgsql
as $$
declare
    v_views text[] := array(select name from @schema@.pge_projection_definitions
                            where name = any (projections) and kind = 'view');
    v_options text := json_build_object('projections', projections)::text;
    v_batch bigint;
    v_keys jsonb := routed;
    v_result jsonb;
begin
    if cardinality(v_views) > 0 then
        v_batch := (random() * 1e15)::bigint;
        v_keys := v_keys || @schema@.pge_engine_result(@schema@.pge_engine_call('route',
            '{"events":' || records || ',"batch":' || v_batch || ',"options":' || json_build_object('projections', v_views)::text || '}'));
    end if;
    v_result := @schema@.pge_engine_result(@schema@.pge_engine_call('apply',
        case when v_batch is null then '{"events":' || records else '{"batch":' || v_batch end
        || ',"documents":' || @schema@.pge_load_documents(v_keys)::text || ',"options":' || v_options || '}'));
    if jsonb_array_length(v_result -> 'errors') > 0 then
        raise exception using errcode = 'JP500', message = v_result -> 'errors' -> 0 ->> 'message',
            detail = (v_result -> 'errors' -> 0)::text;
    end if;
    perform @schema@.pge_write_changes(v_result -> 'changes');
end;
$$;

-- The engine record (JSON text) of an event row and its stream's type.
-- Built by text concatenation: twice as fast as json_build_object for large pages.
-- The event is {"$type", "$id", ...data}: data's text with its opening brace replaced.
create function pge_event_record(r_position bigint, r_stream_id text, r_stream_type text, r_version bigint,
                                 r_timestamp timestamptz, r_metadata jsonb, r_type text, r_id uuid, r_data jsonb)
returns text
language sql immutable parallel safe
as $$
    select concat(
        '{"position":', r_position, ',"streamId":', to_json(r_stream_id), ',"streamType":', to_json(r_stream_type),
        ',"version":', r_version,
        ',"timestamp":"', to_char(r_timestamp at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        '","metadata":', coalesce(r_metadata::text, 'null'),
        ',"event":{"$type":', to_json(r_type), ',"$id":"', r_id, '"',
        case when r_data = '{}'::jsonb then '}' else ',' || substr(r_data::text, 2) end, '}')
$$;

-- The in-database inline trigger: one engine batch per appending statement.
create function pge_inline_trigger() returns trigger
language plpgsql
as $$
declare
    v_projections text[];
    v_records text;
    v_routed jsonb;
begin
    select array_agg(name order by name) into v_projections
    from @schema@.pge_projection_definitions where lifecycle = 'inline' and engine in ('plpython', 'plv8');
    if v_projections is null then
        return null;
    end if;
    select '[' || string_agg(@schema@.pge_event_record(e.position, e.stream_id, s.type, e.version, e.timestamp,
                                                       e.metadata, e.type, e.id, e.data), ',' order by e.position) || ']',
           @schema@.pge_route(array_agg(e.stream_id), array_agg(s.type), array_agg(e.type), v_projections)
    into v_records, v_routed
    from new_events e join @schema@.pge_streams s on s.id = e.stream_id;
    perform @schema@.pge_apply_records(v_records, v_routed, v_projections);
    return null;
end;
$$;

-- Refuses appends that bypass the Python engine while it keeps inline projections.
create function pge_python_inline_guard() returns trigger
language plpgsql
as $$
begin
    if coalesce(current_setting('jsproj.inline_engine', true), '') <> 'python' then
        raise exception using errcode = 'JP503', message = format(
            'projections %s are updated inline by the Python engine: append through jsproj '
            '(EventStore.append, jsproj append), or deploy them with --engine plpython',
            (select string_agg(name, ', ' order by name) from @schema@.pge_projection_definitions
             where lifecycle = 'inline' and engine = 'python'));
    end if;
    return null;
end;
$$;

-- Append as the Python engine does, in one round trip: the append, its events
-- as engine records, the deployment generation (to notice a redeploy), and
-- the documents the Python-engine inline projections route to by rule, locked.
create function pge_append_records(message jsonb, out result jsonb, out records text, out generation bigint,
                                   out documents jsonb)
language plpgsql
as $$
declare
    v_projections text[];
begin
    perform set_config('jsproj.inline_engine', 'python', true);
    result := @schema@.pge_append(message);
    v_projections := array(select name from @schema@.pge_projection_definitions
                           where lifecycle = 'inline' and engine = 'python');
    select '[' || string_agg(@schema@.pge_event_record(e.position, e.stream_id, s.type, e.version, e.timestamp,
                                                       e.metadata, e.type, e.id, e.data), ',' order by e.position) || ']',
           @schema@.pge_load_documents(@schema@.pge_route(array_agg(e.stream_id), array_agg(s.type), array_agg(e.type),
                                                          v_projections))
    into records, documents
    from @schema@.pge_events e join @schema@.pge_streams s on s.id = e.stream_id
    where e.position in (select jsonb_array_elements_text(result -> 'positions')::bigint);
    select g.generation into generation from @schema@.pge_engine g;
end;
$$;

-- Rebuild a projection's documents from the whole event log with the
-- in-database engine, in pages, in the order readers see (transaction, position).
create function pge_rebuild(projection text, page_size int default 5000) returns bigint
language plpgsql
as $$
declare
    v_table text := @schema@.pge_document_table(projection);
    v_tx xid8 := '0';
    v_position bigint := 0;
    v_records text;
    v_routed jsonb;
    v_count bigint;
    v_total bigint := 0;
begin
    if v_table is null then
        raise exception using errcode = 'JP404', message = format('there is no deployed projection %s', projection);
    end if;
    if v_table = 'pge_aggregates' then
        delete from @schema@.pge_aggregates where name = projection;
    else
        execute format('truncate @schema@.%I', v_table);
    end if;
    loop
        select '[' || string_agg(page.record, ',' order by page.tx_id, page.position) || ']', count(*),
               (array_agg(page.tx_id order by page.tx_id desc, page.position desc))[1],
               (array_agg(page.position order by page.tx_id desc, page.position desc))[1],
               @schema@.pge_route(array_agg(page.stream_id), array_agg(page.stream_type), array_agg(page.type),
                                  array[projection])
        into v_records, v_count, v_tx, v_position, v_routed
        from (select e.tx_id, e.position, e.stream_id, s.type as stream_type, e.type,
                     @schema@.pge_event_record(e.position, e.stream_id, s.type, e.version, e.timestamp,
                                               e.metadata, e.type, e.id, e.data) as record
              from @schema@.pge_events e join @schema@.pge_streams s on s.id = e.stream_id
              where (e.tx_id, e.position) > (v_tx, v_position)
              order by e.tx_id, e.position
              limit page_size) as page;
        exit when v_count = 0;
        perform @schema@.pge_apply_records(v_records, v_routed, array[projection]);
        v_total := v_total + v_count;
    end loop;
    return v_total;
end;
$$;

-- Deploy projection definitions: [{name, kind, lifecycle, engine, file, source,
-- hash, streamType, eventTypes, anyEvent}] is the whole set (others are removed).
-- Creates document tables, clears the documents of new and changed stored
-- projections, replaces the engine bundle, sets up the inline triggers, and
-- returns {added, changed, unchanged, removed, rebuild}: the caller rebuilds
-- those (pge_rebuild for in-database engines). Appends wait until it commits.
create function pge_deploy(definitions jsonb, bundle text, bundle_hash text) returns jsonb
language plpgsql
as $$
declare
    v_old record;
    v_def jsonb;
    v_name text;
    v_stored boolean;
    v_status text;
    v_report jsonb := '{"added": [], "changed": [], "unchanged": [], "removed": [], "rebuild": []}';
begin
    lock table @schema@.pge_events in share mode;
    for v_old in select * from @schema@.pge_projection_definitions
                 where name not in (select d ->> 'name' from jsonb_array_elements(definitions) as d) loop
        if v_old.kind = 'aggregate' then
            delete from @schema@.pge_aggregates where name = v_old.name;
        else
            execute format('drop table if exists @schema@.%I', 'pge_projections_' || lower(v_old.name));
        end if;
        delete from @schema@.pge_projection_definitions where name = v_old.name;
        v_report := jsonb_set(v_report, '{removed}', (v_report -> 'removed') || to_jsonb(v_old.name));
    end loop;

    for v_def in select * from jsonb_array_elements(definitions) loop
        v_name := v_def ->> 'name';
        v_stored := v_def ->> 'lifecycle' in ('inline', 'async');
        select * into v_old from @schema@.pge_projection_definitions where name = v_name;
        v_status := case
            when not found then 'added'
            when v_old.hash <> v_def ->> 'hash' or v_old.kind <> v_def ->> 'kind' or v_old.lifecycle <> v_def ->> 'lifecycle'
                 or v_old.engine <> v_def ->> 'engine' then 'changed'
            else 'unchanged'
        end;
        if v_status = 'changed' then  -- clear what the old definition stored
            if v_old.kind = 'aggregate' then
                delete from @schema@.pge_aggregates where name = v_name;
            else
                execute format('drop table if exists @schema@.%I', 'pge_projections_' || lower(v_name));
            end if;
        end if;
        insert into @schema@.pge_projection_definitions
            (name, kind, lifecycle, engine, file, source, hash, stream_type, event_types, any_event, deployed_at)
        values (v_name, v_def ->> 'kind', v_def ->> 'lifecycle', v_def ->> 'engine', v_def ->> 'file', v_def ->> 'source',
                v_def ->> 'hash', v_def ->> 'streamType',
                array(select jsonb_array_elements_text(coalesce(v_def -> 'eventTypes', '[]'))),
                coalesce((v_def ->> 'anyEvent')::boolean, false), now())
        on conflict (name) do update set
            kind = excluded.kind, lifecycle = excluded.lifecycle, engine = excluded.engine, file = excluded.file,
            source = excluded.source, hash = excluded.hash, stream_type = excluded.stream_type,
            event_types = excluded.event_types, any_event = excluded.any_event,
            deployed_at = case when v_status = 'unchanged' then @schema@.pge_projection_definitions.deployed_at else now() end;
        if v_stored and v_def ->> 'kind' <> 'aggregate' then
            execute format('create table if not exists @schema@.%I (
                                id text primary key, data jsonb not null, updated_at timestamptz not null default now())',
                           'pge_projections_' || lower(v_name));
        end if;
        v_report := jsonb_set(v_report, array[v_status], (v_report -> v_status) || to_jsonb(v_name));
        if v_stored and v_status <> 'unchanged' then
            v_report := jsonb_set(v_report, '{rebuild}', (v_report -> 'rebuild') || to_jsonb(v_name));
        end if;
    end loop;

    update @schema@.pge_engine set bundle = pge_deploy.bundle, bundle_hash = pge_deploy.bundle_hash,
        generation = generation + case
            when pge_engine.bundle_hash <> pge_deploy.bundle_hash or jsonb_array_length(v_report -> 'added') > 0
                 or jsonb_array_length(v_report -> 'changed') > 0 or jsonb_array_length(v_report -> 'removed') > 0 then 1
            else 0 end;

    drop trigger if exists pge_events_inline on @schema@.pge_events;
    if exists (select from @schema@.pge_projection_definitions where lifecycle = 'inline' and engine in ('plpython', 'plv8')) then
        create trigger pge_events_inline after insert on @schema@.pge_events
            referencing new table as new_events for each statement execute function @schema@.pge_inline_trigger();
    end if;
    drop trigger if exists pge_events_python_guard on @schema@.pge_events;
    if exists (select from @schema@.pge_projection_definitions where lifecycle = 'inline' and engine = 'python') then
        create trigger pge_events_python_guard after insert on @schema@.pge_events
            for each statement execute function @schema@.pge_python_inline_guard();
    end if;
    return v_report;
end;
$$;
