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

-- A stream's archived_at (null: not archived), the stream locked first: its
-- append lock (no append to it is halfway) and its row. An unknown stream is
-- JPS04. (Called by the entries below, as the owner: granted to no one.)
create or replace function pge_locked_stream(stream_id text) returns timestamptz
language plpgsql
as $$
declare
    v_archived timestamptz;
begin
    perform pg_advisory_xact_lock(1246974036, hashtext(stream_id));
    select s.archived_at into v_archived from @schema@.pge_streams s where s.id = stream_id for update;
    if not found then
        raise exception using errcode = 'JPS04', message = format('there is no stream %s', to_json(stream_id)),
            detail = json_build_object('streamId', stream_id)::text;
    end if;
    return v_archived;
end;
$$;

revoke execute on function pge_locked_stream(text) from public;

-- Archive a stream: its events stay where they are, but pge_records() (every
-- page, build, rebuild and subscriber read) and the store's reads leave them
-- out, and appends to it are refused (JPS23) until it is unarchived. The
-- views already built from it are kept as they are (docs/lifecycle.md says
-- why). Archiving an archived stream changes nothing. Returns
-- {"streamId", "archivedAt", "changed"}.
-- With idle_before (retention's), a stream that took an event since is left
-- as it is: the check runs under the stream's lock, after any append that
-- held it (the stream's rows, as they are when the lock is granted).
create or replace function pge_archive_stream(stream_id text, idle_before timestamptz default null) returns jsonb
language plpgsql
security definer set search_path = pg_catalog, pg_temp
as $$
declare
    v_before timestamptz;
    v_after timestamptz;
begin
    v_before := @schema@.pge_locked_stream(stream_id);
    if v_before is null and idle_before is not null
       and (select max(e.appended_at) from @schema@.pge_events e where e.stream_id = pge_archive_stream.stream_id)
           >= idle_before then
        return jsonb_build_object('streamId', stream_id, 'archivedAt', null, 'changed', false);
    end if;
    v_after := coalesce(v_before, now());
    if v_before is null then
        update @schema@.pge_streams s set archived_at = v_after where s.id = stream_id;
    end if;
    return jsonb_build_object('streamId', stream_id, 'archivedAt', v_after, 'changed', v_before is null);
end;
$$;

revoke execute on function pge_archive_stream(text, timestamptz) from public;

comment on function pge_archive_stream(text, timestamptz) is
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
    v_before := @schema@.pge_locked_stream(stream_id);
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
-- metadata {"$erased": <the erasure's id>}. Positions, versions, types and
-- times stay, so every reader's order holds. `reached` maps each stored
-- projection the events reached to the documents they touched ({name: [ids]},
-- by the engine's routing: src/jsproj/projections/erasure.py): those
-- documents are deleted from the views now (the caller rebuilds them: inline
-- ones in this transaction, async ones beside and swapped in later, so that
-- until then, and if that rebuild fails, the view holds nothing of them); the
-- tables of their retired versions, which nothing can rebuild, are emptied;
-- and every error jsproj kept about the events or those projections (dead
-- letters, a stopped projection's, a version's, a subscription's about the
-- events) says only that it was erased. The erasure is recorded in
-- pge_erasures (who: the session's user, when, the caller's reason, which
-- positions). Returns the erasure's id.
create or replace function pge_erase_events(positions bigint[], reason text, reached jsonb) returns bigint
language plpgsql
security definer set search_path = pg_catalog, pg_temp
as $$
declare
    v_id bigint;
    v_ids text[];
    v_names text[] := array(select jsonb_object_keys(coalesce(reached, '{}')));
    v_marker jsonb;
    v_doc record;
begin
    if reason is null or length(reason) not between 1 and 1000 then
        raise exception using errcode = 'JP400', message = 'an erasure needs a reason of 1 to 1000 characters';
    end if;
    -- Appends wait until the erasure commits: the log in share mode (held already if the caller took it). Not
    -- the streams' append locks: an append holds its stream's while it waits for the log, so taking them here,
    -- after the log, would deadlock with it; and an append that waits has not written (versions do not change).
    lock table @schema@.pge_events in share mode;
    select array_agg(e.id::text order by e.position) into v_ids from @schema@.pge_events e where e.position = any (positions);
    insert into @schema@.pge_erasures (erased_by, reason, events, positions)
    values (session_user, reason, coalesce(cardinality(v_ids), 0),
            array(select e.position from @schema@.pge_events e where e.position = any (positions) order by 1))
    returning id into v_id;
    v_marker := jsonb_build_object('kind', 'Erased', 'message', format('erased (erasure %s)', v_id), 'erasure', v_id);
    update @schema@.pge_events e set data = '{"$erased": true}'::jsonb, metadata = jsonb_build_object('$erased', v_id)
    where e.position = any (positions);
    -- the documents they touched, out of the views until rebuilt (names and tables: the definitions')
    -- (null for a projection: its documents the routing could not name, all of them)
    for v_doc in
        select d.name, @schema@.pge_document_table(d.name) as tab, d.kind, reached -> d.name as ids
        from @schema@.pge_projection_definitions d
        where d.name = any (v_names) and d.lifecycle <> 'live'
    loop
        if v_doc.kind = 'aggregate' then
            delete from @schema@.pge_aggregates a where a.name = v_doc.name;
        elsif jsonb_typeof(v_doc.ids) = 'array' then
            execute format('delete from @schema@.%I where id = any ($1)', v_doc.tab)
            using array(select jsonb_array_elements_text(v_doc.ids));
        else
            execute format('delete from @schema@.%I', v_doc.tab);
        end if;
    end loop;
    -- their retired versions' tables: kept for going back, but nothing can rebuild them
    for v_doc in
        select v.table_name from @schema@.pge_projection_versions v
        where v.name = any (v_names) and v.status = 'retired' and v.table_name is not null
          and to_regclass('@schema@.' || quote_ident(v.table_name)) is not null
    loop
        execute format('delete from @schema@.%I', v_doc.table_name);
    end loop;
    -- (an error names its event by position or id; one of a reached projection may quote its documents)
    update @schema@.pge_dead_letters l set error = v_marker || jsonb_build_object('position', l.position)
    where l.position = any (positions) or l.projection = any (v_names);
    update @schema@.pge_projection_progress p set error = v_marker
    where p.error is not null and (p.name = any (v_names) or (p.error ->> 'position')::bigint = any (positions)
                                   or p.error ->> 'eventId' = any (v_ids));
    update @schema@.pge_projection_versions v set error = v_marker
    where v.error is not null and (v.name = any (v_names) or (v.error ->> 'position')::bigint = any (positions)
                                   or v.error ->> 'eventId' = any (v_ids));
    update @schema@.pge_subscriptions s set error = v_marker
    where (s.error ->> 'position')::bigint = any (positions) or s.error ->> 'eventId' = any (v_ids);
    return v_id;
end;
$$;

revoke execute on function pge_erase_events(bigint[], text, jsonb) from public;

comment on function pge_erase_events(bigint[], text, jsonb) is
    'jsproj: erase the events at these positions (data and metadata replaced by a marker), the documents they touched in the projections they reached and those projections'' errors and retired tables; recorded in pge_erasures; returns the erasure''s id';
