-- A stream's lifecycle beyond appends (docs/lifecycle.md): archiving and
-- unarchiving. Applied by `jsproj migrate` after the migrations, whenever
-- this file changes (src/jsproj/store/migrate.py): `create or replace`
-- only, with search_path set to the store's schema; inside function bodies
-- @schema@ is the quoted schema name.
--
-- Both are SECURITY DEFINER with a pinned search_path, as pge_append is
-- (sql/functions/events.sql says why; pge_pin_settings pins them with it):
-- they change pge_streams, which no application role may write, and only
-- roles granted EXECUTE on them may call them (docs/deploy.md#privileges).
-- Each takes the stream's append lock (the advisory lock pge_append takes),
-- so that no append is halfway when the stream changes state.

-- Archive a stream: its events stay where they are, but pge_records() (every
-- page, build, rebuild and subscriber read) and the store's reads leave them
-- out, and appends to it are refused (JPS23) until it is unarchived. The
-- views already built from it are kept as they are (docs/lifecycle.md says
-- why). Archiving an archived stream changes nothing. Returns
-- {"streamId", "archivedAt", "changed"}.
create or replace function pge_archive_stream(stream_id text) returns jsonb
language plpgsql
security definer set search_path = pg_catalog, pg_temp
as $$
declare
    v_before timestamptz;
    v_after timestamptz;
begin
    perform pg_advisory_xact_lock(1246974036, hashtext(stream_id));
    select s.archived_at into v_before from @schema@.pge_streams s where s.id = stream_id for update;
    if not found then
        raise exception using errcode = 'JPS04', message = format('there is no stream %s', to_json(stream_id)),
            detail = json_build_object('streamId', stream_id)::text;
    end if;
    v_after := coalesce(v_before, now());
    if v_before is null then
        update @schema@.pge_streams s set archived_at = v_after where s.id = stream_id;
    end if;
    return jsonb_build_object('streamId', stream_id, 'archivedAt', v_after, 'changed', v_before is null);
end;
$$;

revoke execute on function pge_archive_stream(text) from public;

comment on function pge_archive_stream(text) is
    'jsproj: archive a stream (its events are left out of reads, builds and rebuilds; appends are refused); returns {"streamId", "archivedAt", "changed"}';

-- Unarchive a stream: its events are read again, and it takes appends.
-- Projections that had not reached its events fold them when they do; views
-- built while it was archived leave them out until rebuilt. Returns
-- {"streamId", "changed"}.
create or replace function pge_unarchive_stream(stream_id text) returns jsonb
language plpgsql
security definer set search_path = pg_catalog, pg_temp
as $$
declare
    v_before timestamptz;
begin
    perform pg_advisory_xact_lock(1246974036, hashtext(stream_id));
    select s.archived_at into v_before from @schema@.pge_streams s where s.id = stream_id for update;
    if not found then
        raise exception using errcode = 'JPS04', message = format('there is no stream %s', to_json(stream_id)),
            detail = json_build_object('streamId', stream_id)::text;
    end if;
    if v_before is not null then
        update @schema@.pge_streams s set archived_at = null where s.id = stream_id;
    end if;
    return jsonb_build_object('streamId', stream_id, 'changed', v_before is not null);
end;
$$;

revoke execute on function pge_unarchive_stream(text) from public;

comment on function pge_unarchive_stream(text) is
    'jsproj: unarchive a stream (its events are read again and it takes appends); returns {"streamId", "changed"}';

-- Erase the events at `positions` (hard, for erasure requests): in the
-- caller's transaction, their data becomes {"$erased": true} and their
-- metadata {"$erased": <the erasure's id>}; every error jsproj kept about
-- them (dead letters, a stopped projection's or subscription's error, a
-- version's) is replaced by one that says only that the event was erased.
-- Positions, versions, types and times stay, so every reader's order holds.
-- The erasure is recorded in pge_erasures (who: the session's user, when,
-- the caller's reason, which positions). Rebuilding the views the events
-- reached is the caller's (src/jsproj/projections/erasure.py), in the same
-- transaction for inline projections. Returns the erasure's id.
create or replace function pge_erase_events(positions bigint[], reason text) returns bigint
language plpgsql
security definer set search_path = pg_catalog, pg_temp
as $$
declare
    v_id bigint;
    v_ids text[];
    v_marker jsonb;
begin
    if reason is null or length(reason) not between 1 and 1000 then
        raise exception using errcode = 'JP400', message = 'an erasure needs a reason of 1 to 1000 characters';
    end if;
    -- the streams' append locks, in one order: no append to them is halfway
    perform pg_advisory_xact_lock(1246974036, h)
    from (select distinct hashtext(e.stream_id) as h from @schema@.pge_events e where e.position = any (positions)
          order by h) as locks;
    select array_agg(e.id::text order by e.position) into v_ids from @schema@.pge_events e where e.position = any (positions);
    insert into @schema@.pge_erasures (erased_by, reason, events, positions)
    values (session_user, reason, coalesce(cardinality(v_ids), 0),
            array(select e.position from @schema@.pge_events e where e.position = any (positions) order by 1))
    returning id into v_id;
    v_marker := jsonb_build_object('kind', 'Erased', 'message', format('the event was erased (erasure %s)', v_id),
                                   'erasure', v_id);
    update @schema@.pge_events e set data = '{"$erased": true}'::jsonb, metadata = jsonb_build_object('$erased', v_id)
    where e.position = any (positions);
    -- (an error names its event by position or id; either is enough to know it for one of these)
    update @schema@.pge_dead_letters l set error = v_marker || jsonb_build_object('position', l.position)
    where l.position = any (positions);
    update @schema@.pge_projection_progress p set error = v_marker
    where (p.error ->> 'position')::bigint = any (positions) or p.error ->> 'eventId' = any (v_ids);
    update @schema@.pge_subscriptions s set error = v_marker
    where (s.error ->> 'position')::bigint = any (positions) or s.error ->> 'eventId' = any (v_ids);
    update @schema@.pge_projection_versions v set error = v_marker
    where (v.error ->> 'position')::bigint = any (positions) or v.error ->> 'eventId' = any (v_ids);
    return v_id;
end;
$$;

revoke execute on function pge_erase_events(bigint[], text) from public;

comment on function pge_erase_events(bigint[], text) is
    'jsproj: erase the events at these positions (data and metadata replaced by a marker, errors about them too), recorded in pge_erasures; returns the erasure''s id';
