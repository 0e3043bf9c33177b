-- Deploying: registering the whole set of projection definitions, their
-- document tables, the engine bundle, and the triggers of inline and async projections.
-- Applied by `jsproj migrate` after the migrations, whenever this file
-- changes (src/jsproj/migrate.py): `create or replace` only, with
-- search_path set to the store's schema; inside function bodies @schema@
-- is the quoted schema name (qualified names instead of a SET search_path
-- clause, which costs ~100 us per call). A signature change is a migration
-- that drops the old function.

-- Deploy projection definitions: [{name, kind, lifecycle, engine, file, source,
-- hash, streamType, eventTypes, anyEvent, onError, partitions, indexes}] is the
-- whole set (others are removed).
-- Creates document tables, clears the documents of new and changed stored
-- projections, replaces the engine bundle, sets up the inline triggers, and
-- returns {added, changed, unchanged, removed, rebuild, indexes}: the caller
-- rebuilds those (pge_rebuild for in-database engines); indexes says, per
-- projection, the fields whose indexes were created and dropped
-- (pge_sync_indexes: declared indexes are not a change, and rebuild nothing).
-- Appends wait until it commits.
-- An async projection that is new or changed keeps its old documents (if
-- any) and gets status 'build', so that readers see the old view until the
-- daemon swaps the rebuilt one in (a new number of partitions is a change:
-- one progress row per partition); removed projections lose their progress
-- and dead letters; daemons are woken by a notify trigger while async
-- projections (or Python subscriptions) exist; the inline trigger serves every in-database engine.
create or replace function pge_deploy(definitions jsonb, bundle text, bundle_hash text) returns jsonb
language plpgsql
as $$
declare
    v_old record;
    v_def jsonb;
    v_name text;
    v_lifecycle text;
    v_stored boolean;
    v_status text;
    v_partitions int;
    v_indexes text[];
    v_synced jsonb;
    v_report jsonb := '{"added": [], "changed": [], "unchanged": [], "removed": [], "rebuild": [], "indexes": {}}';
begin
    lock table @schema@.pge_events in share mode;
    for v_old in select * from @schema@.pge_projection_definitions
                 where name not in (select d ->> 'name' from jsonb_array_elements(definitions) as d) loop
        if v_old.kind = 'aggregate' then
            delete from @schema@.pge_aggregates where name = v_old.name;
        else
            execute format('drop table if exists @schema@.%I', 'pge_projections_' || lower(v_old.name));
        end if;
        execute format('drop table if exists @schema@.%I', 'pge_build_' || lower(v_old.name));
        delete from @schema@.pge_projection_progress where name = v_old.name;
        delete from @schema@.pge_dead_letters where projection = v_old.name;
        delete from @schema@.pge_projection_definitions where name = v_old.name;
        v_report := jsonb_set(v_report, '{removed}', (v_report -> 'removed') || to_jsonb(v_old.name));
    end loop;

    for v_def in select * from jsonb_array_elements(definitions) loop
        v_name := v_def ->> 'name';
        v_lifecycle := v_def ->> 'lifecycle';
        v_stored := v_lifecycle in ('inline', 'async');
        v_partitions := coalesce((v_def ->> 'partitions')::int, 1);
        if v_partitions > 1 and (v_lifecycle <> 'async' or v_def ->> 'kind' not in ('stream', 'view')) then
            raise exception using errcode = 'JP400',
                message = format('%s: only async stream and view projections have partitions', v_name);
        end if;
        v_indexes := array(select jsonb_array_elements_text(coalesce(v_def -> 'indexes', '[]')));
        if cardinality(v_indexes) > 0 and (not v_stored or v_def ->> 'kind' = 'aggregate') then
            raise exception using errcode = 'JP400',
                message = format('%s: only stored stream, event and view projections have indexes', v_name);
        end if;
        select * into v_old from @schema@.pge_projection_definitions where name = v_name;
        v_status := case
            when not found then 'added'
            when v_old.hash <> v_def ->> 'hash' or v_old.kind <> v_def ->> 'kind' or v_old.lifecycle <> v_lifecycle
                 or v_old.engine <> v_def ->> 'engine' or v_old.partitions <> v_partitions then 'changed'
            else 'unchanged'
        end;
        -- Clear what the old definition stored, unless an async projection keeps
        -- showing its old documents until its rebuild is swapped in.
        if v_status = 'changed' and not (v_lifecycle = 'async' and v_old.kind = v_def ->> 'kind') then
            if v_old.kind = 'aggregate' then
                delete from @schema@.pge_aggregates where name = v_name;
            else
                execute format('drop table if exists @schema@.%I', 'pge_projections_' || lower(v_name));
            end if;
        end if;
        insert into @schema@.pge_projection_definitions
            (name, kind, lifecycle, engine, file, source, hash, stream_type, event_types, any_event, on_error, partitions,
             indexes, deployed_at)
        values (v_name, v_def ->> 'kind', v_lifecycle, v_def ->> 'engine', v_def ->> 'file', v_def ->> 'source',
                v_def ->> 'hash', v_def ->> 'streamType',
                array(select jsonb_array_elements_text(coalesce(v_def -> 'eventTypes', '[]'))),
                coalesce((v_def ->> 'anyEvent')::boolean, false), coalesce(v_def ->> 'onError', 'stop'), v_partitions,
                v_indexes, now())
        on conflict (name) do update set
            kind = excluded.kind, lifecycle = excluded.lifecycle, engine = excluded.engine, file = excluded.file,
            source = excluded.source, hash = excluded.hash, stream_type = excluded.stream_type,
            event_types = excluded.event_types, any_event = excluded.any_event, on_error = excluded.on_error,
            partitions = excluded.partitions, indexes = excluded.indexes,
            deployed_at = case when v_status = 'unchanged' then @schema@.pge_projection_definitions.deployed_at else now() end;
        -- Pages left 30% free, as a build's staging table (src/jsproj/daemon/build.py): an update of a
        -- document stays on its page (HOT: no new index entry), which makes updates a third cheaper.
        if v_stored and v_def ->> 'kind' <> 'aggregate' then
            execute format('create table if not exists @schema@.%I (
                                id text primary key, data jsonb not null, updated_at timestamptz not null default now())
                            with (fillfactor = 70)',
                           'pge_projections_' || lower(v_name));
            -- On the table readers see: an async build to come makes them on its staging table too.
            v_synced := @schema@.pge_sync_indexes(v_name);
            if v_synced <> '{"created": [], "dropped": []}' then
                v_report := jsonb_set(v_report, array['indexes', v_name], v_synced);
            end if;
        end if;
        if v_lifecycle = 'async' then
            delete from @schema@.pge_projection_progress where name = v_name and partition >= v_partitions;
            insert into @schema@.pge_projection_progress (name, partition)
            select v_name, g from generate_series(0, v_partitions - 1) g on conflict (name, partition) do nothing;
            if v_status <> 'unchanged' then
                -- One new epoch for every partition, new ones included.
                update @schema@.pge_projection_progress
                set status = 'build', error = null, last_tx = '0', last_position = 0, events = 0, updated_at = now(),
                    epoch = (select max(q.epoch) + 1 from @schema@.pge_projection_progress q where q.name = v_name)
                where name = v_name;
            end if;
        else
            delete from @schema@.pge_projection_progress where name = v_name;
        end if;
        v_report := jsonb_set(v_report, array[v_status], (v_report -> v_status) || to_jsonb(v_name));
        if v_lifecycle = 'inline' and v_status <> 'unchanged' then
            v_report := jsonb_set(v_report, '{rebuild}', (v_report -> 'rebuild') || to_jsonb(v_name));
        end if;
    end loop;

    update @schema@.pge_engine set bundle = pge_deploy.bundle, bundle_hash = pge_deploy.bundle_hash,
        generation = generation + case
            when pge_engine.bundle_hash <> pge_deploy.bundle_hash or jsonb_array_length(v_report -> 'added') > 0
                 or jsonb_array_length(v_report -> 'changed') > 0 or jsonb_array_length(v_report -> 'removed') > 0 then 1
            else 0 end;

    drop trigger if exists pge_events_inline on @schema@.pge_events;
    if exists (select from @schema@.pge_projection_definitions where lifecycle = 'inline' and engine <> 'python') then
        create trigger pge_events_inline after insert on @schema@.pge_events
            referencing new table as new_events for each statement execute function @schema@.pge_inline_trigger();
    end if;
    drop trigger if exists pge_events_python_guard on @schema@.pge_events;
    if exists (select from @schema@.pge_projection_definitions where lifecycle = 'inline' and engine = 'python') then
        create trigger pge_events_python_guard after insert on @schema@.pge_events
            for each statement execute function @schema@.pge_python_inline_guard();
    end if;
    drop trigger if exists pge_events_notify on @schema@.pge_events;
    -- Python subscribers listen on it too (sql/functions/subscriptions.sql).
    if exists (select from @schema@.pge_projection_definitions where lifecycle = 'async')
       or exists (select from @schema@.pge_subscriptions) then
        create trigger pge_events_notify after insert on @schema@.pge_events
            for each statement execute function @schema@.pge_notify_daemons();
    end if;
    return v_report;
end;
$$;
