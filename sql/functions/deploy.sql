-- Deploying: registering the whole set of projection definitions, their
-- document tables, the engine bundle, and the triggers of inline and async projections.
-- Applied by `jsproj migrate` after the migrations, whenever this file
-- changes (src/jsproj/store/migrate.py): `create or replace` only, with
-- search_path set to the store's schema; inside function bodies @schema@
-- is the quoted schema name (qualified names instead of a SET search_path
-- clause, which costs ~100 us per call). A signature change is a migration
-- that drops the old function.

-- Whether deploying `definition` makes a new version that is built beside
-- the deployed one (docs/deploy.md#versions): a higher version of an async
-- stream, event or view projection of one partition that stays such. Any
-- other change (an inline projection's, a kind's, an aggregate's, a
-- partitioned one's) is rebuilt in place as before.
create or replace function pge_deploy_versioned(definition jsonb) returns boolean
language sql stable
as $$
    select coalesce(bool_or(coalesce((definition ->> 'version')::int, 1) > d.version
                            and d.lifecycle = 'async' and definition ->> 'lifecycle' = 'async'
                            and d.kind = definition ->> 'kind' and d.kind <> 'aggregate'
                            and d.partitions = 1 and coalesce((definition ->> 'partitions')::int, 1) = 1), false)
    from @schema@.pge_projection_definitions d where d.name = definition ->> 'name'
$$;

-- Whether deploying `definition` adds, changes or leaves a projection
-- ('added', 'changed', 'unchanged'), or makes a new version of it to build
-- beside it ('pending'): the one rule of pge_deploy and pge_deploy_plan. Declared indexes are not part of it.
create or replace function pge_deploy_status(definition jsonb) returns text
language sql stable
as $$
    select case
        when d.name is null then 'added'
        -- A new version built beside the deployed one: pending, unless that very version waits already.
        when @schema@.pge_deploy_versioned(definition) then
            case when exists (select from @schema@.pge_projection_versions v
                              where v.name = d.name and v.version = (definition ->> 'version')::int
                                and v.status in ('pending', 'built', 'failed') and v.definition = definition)
                 then 'unchanged' else 'pending' end
        when d.hash <> definition ->> 'hash' or d.kind <> definition ->> 'kind'
             or d.lifecycle <> definition ->> 'lifecycle' or d.engine <> definition ->> 'engine'
             or d.partitions <> coalesce((definition ->> 'partitions')::int, 1)
             or d.version <> coalesce((definition ->> 'version')::int, 1) then 'changed'
        else 'unchanged'
    end
    from (select) as one left join @schema@.pge_projection_definitions d on d.name = definition ->> 'name'
$$;

-- Refuse a definition whose version is lower than the deployed one's:
-- versions only go up (deploy a higher one to go back to older code).
create or replace function pge_check_version(definition jsonb) returns void
language plpgsql stable
as $$
declare
    v_deployed int := (select d.version from @schema@.pge_projection_definitions d where d.name = definition ->> 'name');
begin
    if v_deployed > coalesce((definition ->> 'version')::int, 1) then
        raise exception using errcode = 'JP400',
            message = format('%s: version %s is deployed; a deploy does not go back to version %s '
                             '(declare .version(%s) or higher)', definition ->> 'name', v_deployed,
                             coalesce((definition ->> 'version')::int, 1), v_deployed + 1);
    end if;
end;
$$;

-- Whether `document_table` is a document table that can be emptied and
-- refilled in place (id text, data jsonb, updated_at timestamptz): what keeps
-- the GRANTs, indexes, comments and policies a user gave it. Anything else is
-- dropped and made again.
create or replace function pge_document_table_fits(document_table text) returns boolean
language sql stable
as $$
    select count(*) = 3
    from pg_attribute a
    where a.attrelid = to_regclass(format('%s.%I', '@schema@', document_table)) and not a.attisdropped
      and (a.attname, a.atttypid) in (('id', 'text'::regtype), ('data', 'jsonb'::regtype),
                                      ('updated_at', 'timestamptz'::regtype))
$$;

-- What deploying `definitions` (pge_deploy's) would do, changing nothing and
-- taking no lock (appends go on: `jsproj deploy --dry-run`): {added, changed,
-- unchanged, removed, rebuild, indexes}, as pge_deploy returns them
-- (removed: what pge_deploy removes with prune, and refuses without it). One
-- snapshot: a deploy or build committed after it may make the real one differ.
create or replace function pge_deploy_plan(definitions jsonb) returns jsonb
language plpgsql stable
as $$
declare
    v_def jsonb;
    v_name text;
    v_status text;
    v_table text;
    v_kept boolean;
    v_planned jsonb;
    v_report jsonb := '{"added": [], "changed": [], "unchanged": [], "removed": [], "rebuild": [], "indexes": {},
                         "pending": [], "retired": []}';
begin
    -- The kept tables of replaced versions: what a deploy with prune drops.
    v_report := jsonb_set(v_report, '{retired}', coalesce(
        (select jsonb_agg(v.name || ' v' || v.version order by v.name, v.version)
         from @schema@.pge_projection_versions v where v.status = 'retired'), '[]'));
    v_report := jsonb_set(v_report, '{removed}', coalesce(
        (select jsonb_agg(d.name order by d.name) from @schema@.pge_projection_definitions d
         where d.name not in (select e ->> 'name' from jsonb_array_elements(definitions) as e)), '[]'));
    for v_def in select * from jsonb_array_elements(definitions) loop
        v_name := v_def ->> 'name';
        perform @schema@.pge_check_version(v_def);
        v_status := @schema@.pge_deploy_status(v_def);
        v_report := jsonb_set(v_report, array[v_status], (v_report -> v_status) || to_jsonb(v_name));
        continue when @schema@.pge_deploy_versioned(v_def);  -- the deployed version and its indexes stay
        if v_def ->> 'lifecycle' = 'inline' and v_status <> 'unchanged' then
            v_report := jsonb_set(v_report, '{rebuild}', (v_report -> 'rebuild') || to_jsonb(v_name));
        end if;
        if v_def ->> 'lifecycle' in ('inline', 'async') and v_def ->> 'kind' <> 'aggregate' then
            v_table := 'pge_projections_' || lower(v_name);
            -- The table pge_deploy keeps (then its indexes count), or the one it makes afresh (none yet).
            v_kept := v_status = 'unchanged' or @schema@.pge_document_table_fits(v_table)
                      or (v_def ->> 'lifecycle' = 'async' and exists (
                          select from @schema@.pge_projection_definitions d
                          where d.name = v_name and d.kind = v_def ->> 'kind'));
            v_planned := @schema@.pge_index_plan(v_name,
                array(select jsonb_array_elements_text(coalesce(v_def -> 'indexes', '[]'))),
                case when v_kept then to_regclass(format('%s.%I', '@schema@', v_table)) end);
            if v_planned <> '{"created": [], "dropped": []}' then
                v_report := jsonb_set(v_report, array['indexes', v_name], v_planned);
            end if;
        end if;
    end loop;
    return v_report;
end;
$$;

-- Deploy projection definitions: [{name, kind, lifecycle, engine, file, source,
-- hash, streamType, eventTypes, anyEvent, onError, partitions, indexes}] is the
-- whole set. Deployed projections missing from it are removed (their
-- documents, progress and dead letters) only with prune: without it the
-- deploy is refused (JP412, DETAIL {"removed": [names]}) and changes nothing.
-- Creates document tables, clears the documents of new and changed stored
-- projections, replaces the engine bundle, sets up the inline triggers, and
-- returns {added, changed, unchanged, removed, rebuild, indexes}: the caller
-- rebuilds those (pge_rebuild for in-database engines); indexes says, per
-- projection, the fields whose indexes were created and dropped
-- (pge_sync_indexes: declared indexes are not a change, and rebuild nothing).
-- Appends wait until it commits.
-- A changed inline projection's table is emptied in place (truncate), not
-- dropped, while it stays a document table: the GRANTs and indexes a user
-- gave it stay (pge_document_table_fits).
-- An async projection that is new or changed keeps its old documents (if
-- any) and gets status 'build', so that readers see the old view until the
-- daemon swaps the rebuilt one in (a new number of partitions is a change:
-- one progress row per partition); removed projections lose their progress
-- and dead letters; daemons are woken by a notify trigger while async
-- projections (or Python subscriptions) exist; the inline trigger serves every in-database engine.
create or replace function pge_deploy(definitions jsonb, bundle text, bundle_hash text, prune boolean default false)
    returns jsonb
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
    v_removed text[];
    v_version record;
    v_report jsonb := '{"added": [], "changed": [], "unchanged": [], "removed": [], "rebuild": [], "indexes": {},
                         "pending": [], "retired": []}';
begin
    lock table @schema@.pge_events in share mode;
    -- Never destroy silently: a set that lacks deployed projections removes them only when asked to.
    v_removed := array(select d.name from @schema@.pge_projection_definitions d
                       where d.name not in (select e ->> 'name' from jsonb_array_elements(definitions) as e)
                       order by d.name);
    if cardinality(v_removed) > 0 and not prune then
        raise exception using errcode = 'JP412',
            message = format('this deploy would remove %s (deployed, not in the set) with their documents: '
                             'pass prune => true to remove them, or deploy a set that includes them',
                             array_to_string(v_removed, ', ')),
            detail = jsonb_build_object('removed', to_jsonb(v_removed))::text;
    end if;
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
    -- Replaced versions' tables go only with prune, as removed projections do (theirs included).
    for v_version in select * from @schema@.pge_projection_versions
                     where status = 'retired' or name not in (select d.name from @schema@.pge_projection_definitions d) loop
        exit when not prune;
        if v_version.table_name is not null then
            execute format('drop table if exists @schema@.%I', v_version.table_name);
            v_report := jsonb_set(v_report, '{retired}',
                                  (v_report -> 'retired') || to_jsonb(v_version.name || ' v' || v_version.version));
        end if;
        delete from @schema@.pge_projection_versions where name = v_version.name and version = v_version.version;
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
        perform @schema@.pge_check_version(v_def);
        v_status := @schema@.pge_deploy_status(v_def);
        if @schema@.pge_deploy_versioned(v_def) then
            -- The deployed version keeps its table, progress and daemon; the new one waits to be built beside it.
            if v_status = 'pending' then
                delete from @schema@.pge_projection_versions where name = v_name and status <> 'retired';
                insert into @schema@.pge_projection_versions (name, version, status, promote, definition)
                values (v_name, (v_def ->> 'version')::int, 'pending', coalesce(v_def ->> 'promote', 'auto'), v_def);
            end if;
            v_report := jsonb_set(v_report, array[v_status], (v_report -> v_status) || to_jsonb(v_name));
            continue;
        end if;
        -- Any other deploy of it ends a version waiting to replace it.
        delete from @schema@.pge_projection_versions where name = v_name and status <> 'retired';
        -- Clear what the old definition stored, unless an async projection keeps
        -- showing its old documents until its rebuild is swapped in.
        if v_status = 'changed' and not (v_lifecycle = 'async' and v_old.kind = v_def ->> 'kind') then
            if v_old.kind = 'aggregate' then
                delete from @schema@.pge_aggregates where name = v_name;
            elsif v_stored and v_def ->> 'kind' <> 'aggregate'
                  and @schema@.pge_document_table_fits('pge_projections_' || lower(v_name)) then
                execute format('truncate @schema@.%I', 'pge_projections_' || lower(v_name));
            else
                execute format('drop table if exists @schema@.%I', 'pge_projections_' || lower(v_name));
            end if;
        end if;
        insert into @schema@.pge_projection_definitions
            (name, kind, lifecycle, engine, file, source, hash, stream_type, event_types, any_event, on_error, partitions,
             indexes, version, emits, deployed_at)
        values (v_name, v_def ->> 'kind', v_lifecycle, v_def ->> 'engine', v_def ->> 'file', v_def ->> 'source',
                v_def ->> 'hash', v_def ->> 'streamType',
                array(select jsonb_array_elements_text(coalesce(v_def -> 'eventTypes', '[]'))),
                coalesce((v_def ->> 'anyEvent')::boolean, false), coalesce(v_def ->> 'onError', 'stop'), v_partitions,
                v_indexes, coalesce((v_def ->> 'version')::int, 1), coalesce((v_def ->> 'emits')::boolean, false), now())
        on conflict (name) do update set
            kind = excluded.kind, lifecycle = excluded.lifecycle, engine = excluded.engine, file = excluded.file,
            source = excluded.source, hash = excluded.hash, stream_type = excluded.stream_type,
            event_types = excluded.event_types, any_event = excluded.any_event, on_error = excluded.on_error,
            partitions = excluded.partitions, indexes = excluded.indexes, version = excluded.version, emits = excluded.emits,
            deployed_at = case when v_status = 'unchanged' then @schema@.pge_projection_definitions.deployed_at else now() end;
        -- Pages left 30% free, as a build's staging table (src/jsproj/follow/daemon/build.py): an update of a
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

-- Upcasters (docs/dsl.md#upcasters). A file that defines projections is
-- deployed with them; the files that declare only upcasters and renames of
-- event types are kept in pge_upcaster_files. A change of an upcaster is a
-- change of every projection whose input it reaches (their hash takes in
-- the files of the upcasters that reach them: src/jsproj/projections/deploy.py),
-- so pge_deploy rebuilds those as it does any changed projection.

-- What deploying the upcaster files `files` ([{file, source, hash}], the
-- whole set) would do to those kept: {added, changed, unchanged, removed}
-- file names. Only reads (a dry run's).
create or replace function pge_upcaster_plan(files jsonb) returns jsonb
language sql stable
as $$
    select jsonb_build_object(
        'added', coalesce(jsonb_agg(f ->> 'file' order by f ->> 'file') filter (where u.file is null), '[]'),
        'changed', coalesce(jsonb_agg(f ->> 'file' order by f ->> 'file')
                            filter (where u.file is not null and u.hash <> f ->> 'hash'), '[]'),
        'unchanged', coalesce(jsonb_agg(f ->> 'file' order by f ->> 'file') filter (where u.hash = f ->> 'hash'), '[]'),
        'removed', (select coalesce(jsonb_agg(k.file order by k.file), '[]') from @schema@.pge_upcaster_files k
                    where k.file not in (select g ->> 'file' from jsonb_array_elements(files) as g)))
    from jsonb_array_elements(files) as f left join @schema@.pge_upcaster_files u on u.file = f ->> 'file'
$$;

-- Deploy the upcaster files (the whole set, before pge_deploy in the same
-- transaction): those kept become `files`, and a change moves the
-- deployment generation, so that every engine loads them again. Appends
-- wait until it commits, as for pge_deploy. Returns pge_upcaster_plan's report.
create or replace function pge_deploy_upcasters(files jsonb) returns jsonb
language plpgsql
as $$
declare
    v_report jsonb;
begin
    lock table @schema@.pge_events in share mode;
    v_report := @schema@.pge_upcaster_plan(files);
    delete from @schema@.pge_upcaster_files
    where file not in (select f ->> 'file' from jsonb_array_elements(files) as f);
    insert into @schema@.pge_upcaster_files as u (file, source, hash)
    select f ->> 'file', f ->> 'source', f ->> 'hash' from jsonb_array_elements(files) as f
    on conflict (file) do update set source = excluded.source, hash = excluded.hash, deployed_at = now()
    where u.hash <> excluded.hash;
    if v_report -> 'added' <> '[]' or v_report -> 'changed' <> '[]' or v_report -> 'removed' <> '[]' then
        update @schema@.pge_engine set generation = generation + 1;
    end if;
    return v_report;
end;
$$;

-- Every file the engines load for the deployment, once each: the
-- projections' files and the upcaster files (a file is in one or the
-- other; the definitions' copy is taken should it be in both).
create or replace function pge_deployed_files() returns table (file text, source text)
language sql stable
as $$
    select distinct on (f.file) f.file, f.source
    from (select d.file, d.source, 0 as rank from @schema@.pge_projection_definitions d
          union all
          select u.file, u.source, 1 from @schema@.pge_upcaster_files u) as f
    order by f.file, f.rank
$$;
