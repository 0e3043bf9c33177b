-- Versioned projections (docs/deploy.md#versions): switching a projection to
-- a new version the daemon built beside the deployed one.
-- Applied by `jsproj migrate` after the migrations, whenever this file
-- changes (src/jsproj/store/migrate.py): `create or replace` only, with
-- search_path set to the store's schema; inside function bodies @schema@
-- is the quoted schema name. A signature change is a migration that drops
-- the old function.

-- Make version `version` of `projection`, built into its staging table
-- (pge_build_<name>) up to (after_tx, after_position), the deployed one, in
-- the caller's transaction: the definition, the document table (the old one
-- is kept as pge_v<old version>_<name>, retired, until a deploy with prune),
-- the progress (running on from the last event built, in a new epoch: a page
-- of the old version still in flight is not written) and the deployment
-- generation (every process loads the new code). Readers see the old table
-- until it commits, then the new one: the renames wait for the readers in
-- flight, and a reader waiting on them reads the new table.
-- False, changing nothing, when that version no longer waits with that
-- definition (a deploy replaced or ended it meanwhile).
create or replace function pge_promote_version(projection text, version int, hash text,
                                               after_tx xid8, after_position bigint, events bigint)
    returns boolean
language plpgsql
as $$
declare
    v_pending record;
    v_old record;
    v_def jsonb;
    v_keep text;
begin
    select * into v_pending from @schema@.pge_projection_versions v
    where v.name = projection and v.version = pge_promote_version.version and v.status in ('pending', 'built')
    for update;
    if not found then
        return false;
    end if;
    select * into v_old from @schema@.pge_projection_definitions d where d.name = projection for update;
    if not found or v_pending.definition ->> 'hash' <> hash or v_old.version >= pge_promote_version.version then
        return false;
    end if;
    perform from @schema@.pge_projection_progress p where p.name = projection for update;
    v_def := v_pending.definition;
    update @schema@.pge_projection_definitions d set
        file = v_def ->> 'file', source = v_def ->> 'source', hash = v_def ->> 'hash', engine = v_def ->> 'engine',
        stream_type = v_def ->> 'streamType',
        event_types = array(select jsonb_array_elements_text(coalesce(v_def -> 'eventTypes', '[]'))),
        any_event = coalesce((v_def ->> 'anyEvent')::boolean, false), on_error = coalesce(v_def ->> 'onError', 'stop'),
        indexes = array(select jsonb_array_elements_text(coalesce(v_def -> 'indexes', '[]'))),
        version = pge_promote_version.version, emits = coalesce((v_def ->> 'emits')::boolean, false), deployed_at = now()
    where d.name = projection;
    v_keep := 'pge_v' || v_old.version || '_' || lower(projection);
    -- The swap follows the new definition's declared fields (pge_adopt_indexes).
    perform @schema@.pge_swap_build(projection, v_keep);
    delete from @schema@.pge_projection_versions v where v.name = projection and v.version = pge_promote_version.version;
    insert into @schema@.pge_projection_versions (name, version, status, table_name)
    values (projection, v_old.version, 'retired', v_keep);
    update @schema@.pge_projection_progress p
    set status = 'running', error = null, last_tx = after_tx, last_position = after_position,
        events = pge_promote_version.events, updated_at = now(),
        epoch = (select max(q.epoch) + 1 from @schema@.pge_projection_progress q where q.name = projection)
    where p.name = projection;
    update @schema@.pge_engine set generation = generation + 1;
    return true;
end;
$$;

-- `jsproj promote NAME`: let the version waiting for it (promote 'manual')
-- replace the deployed one: the daemon builds it again to the head of the log
-- and switches. Returns the version, or raises JP404 when none waits.
create or replace function pge_request_promote(projection text) returns int
language plpgsql
as $$
declare
    v_version int;
begin
    update @schema@.pge_projection_versions v
    set promote = 'auto', status = 'pending', error = null, events = 0, updated_at = now()
    where v.name = projection and v.status in ('pending', 'built', 'failed')
    returning v.version into v_version;
    if v_version is null then
        raise exception using errcode = 'JP404',
            message = format('%s has no version waiting to be promoted (deploy a new .version() first)', projection);
    end if;
    return v_version;
end;
$$;
