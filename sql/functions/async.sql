-- Async projections: waking the daemons when events are appended.
-- Applied by `jsproj migrate` after the migrations, whenever this file
-- changes (src/jsproj/store/migrate.py): `create or replace` only, with
-- search_path set to the store's schema; inside function bodies @schema@
-- is the quoted schema name (qualified names instead of a SET search_path
-- clause, which costs ~100 us per call). A signature change is a migration
-- that drops the old function.

-- Wakes daemons (LISTEN pge_events) when events are appended; polling stays
-- the source of truth. Transactions that notify commit one at a time (they
-- queue for PostgreSQL's notification lock), so of the appends in flight at
-- once only the one holding a transaction-level advisory lock notifies, and
-- the others go by without waiting: they commit while daemons are awake,
-- and daemons keep polling briefly after any work (src/jsproj/follow/daemon/loop.py),
-- so they are seen within that short poll instead of a notification.
-- bench/scenario_follow.py measures the cost against no trigger at all, and
-- against a NOTIFY from every append.
create or replace function pge_notify_daemons() returns trigger
language plpgsql
as $$
begin
    if pg_try_advisory_xact_lock(1246974039, hashtext(tg_table_schema)) then
        perform pg_notify('pge_events', '');
    end if;
    return null;
end;
$$;

-- Move the progress of the units a page served, each from where the page
-- started to where it leaves it: a compare-and-set (the unit is still
-- running, at the page's start, in the epoch the daemon read). Raises JPP01
-- when one was not, which undoes the page's transaction
-- (src/jsproj/follow/daemon/pages.py): every statement of a page fails or
-- succeeds the same way.
create or replace function pge_move_progress(
    moved_names text[], moved_partitions int[], from_tx text[], from_position bigint[], to_tx text[],
    to_position bigint[], moved_events bigint[], epochs bigint[]) returns void
language plpgsql
as $$
declare
    v_moved int;
begin
    update @schema@.pge_projection_progress as p
    set last_tx = m.to_tx::xid8, last_position = m.to_position, events = p.events + m.events, updated_at = now()
    from unnest(moved_names, moved_partitions, from_tx, from_position, to_tx, to_position, moved_events, epochs)
         as m(name, part, from_tx, from_position, to_tx, to_position, events, epoch)
    where p.name = m.name and p.partition = m.part and p.status = 'running' and p.epoch = m.epoch
      and p.last_tx = m.from_tx::xid8 and p.last_position = m.from_position;
    get diagnostics v_moved = row_count;
    if v_moved <> cardinality(moved_names) then
        raise exception using errcode = 'JPP01',
            message = format('the progress of %s moved under this daemon', array_to_string(moved_names, ', '));
    end if;
end;
$$;

-- Record events async projections failed on and skipped: [{projection,
-- position, eventId, streamId, eventType, error, partitions}]. Again for an
-- event: the newer error replaces the older, and the partitions add up (a
-- partition's daemon skips an event for its own documents only).
create or replace function pge_add_dead_letters(letters jsonb) returns void
language sql
as $$
    insert into @schema@.pge_dead_letters as l (projection, position, event_id, stream_id, event_type, error, partitions)
    select d ->> 'projection', (d ->> 'position')::bigint, (d ->> 'eventId')::uuid, d ->> 'streamId', d ->> 'eventType',
           d -> 'error', array(select p::int from jsonb_array_elements_text(d -> 'partitions') as p)
    from jsonb_array_elements(letters) as d
    on conflict (projection, position) do update
    set error = excluded.error, retried_at = now(),
        partitions = array(select distinct unnest(l.partitions || excluded.partitions) order by 1),
        retried = array(select unnest(l.retried) except select unnest(excluded.partitions));
$$;

-- Stop async projections where they are, keeping the error: {name: {error,
-- epoch}}. With an epoch, only if the projection is still in it: what an
-- older build or page found stops nothing deployed since.
create or replace function pge_stop_projections(stops jsonb) returns void
language sql
as $$
    update @schema@.pge_projection_progress p
    set status = 'stopped', error = s.value -> 'error', updated_at = now()
    from jsonb_each(stops) as s
    where p.name = s.key and p.epoch = coalesce((s.value ->> 'epoch')::bigint, p.epoch);
$$;

-- Everything a page does, as one statement (its own transaction on a daemon's
-- connection): its dead letters, its documents, the events its projections
-- emitted (each once: pge_append_emitted), the move of its units'
-- progress (raising JPP01, which undoes it all, when one moved meanwhile),
-- and the projections it stops.
create or replace function pge_commit_page(
    changes jsonb, letters jsonb, moved_names text[], moved_partitions int[], from_tx text[],
    from_position bigint[], to_tx text[], to_position bigint[], moved_events bigint[], epochs bigint[],
    stops jsonb) returns void
language plpgsql
as $$
begin
    if letters <> '[]' then
        perform @schema@.pge_add_dead_letters(letters);
    end if;
    if changes <> '{}' then
        perform @schema@.pge_write_changes(changes);
        if jsonb_path_exists(changes, '$.*.emits') then  -- events projections wrote (sql/functions/emits.sql)
            perform @schema@.pge_append_emitted(changes);
        end if;
    end if;
    perform @schema@.pge_move_progress(moved_names, moved_partitions, from_tx, from_position, to_tx, to_position,
                                       moved_events, epochs);
    if stops <> '{}' then
        perform @schema@.pge_stop_projections(stops);
    end if;
end;
$$;

-- Whether a daemon has anything to do in this store: an async projection to
-- build, a running one with events after its progress up to the end of the
-- log a gap-safe reader sees (pge_log_end; events of archived streams are not
-- work: no page reads them), a retry requested, or a new version to build. A daemon serving many
-- stores (src/jsproj/follow/fleet) asks it of the stores it holds no
-- connections to, many in one statement, and connects only to those that
-- answer true. A hint, not the work: the store's daemon finds its own. A
-- stopped projection is no work until `jsproj retry` resumes it.
create or replace function pge_daemon_work() returns boolean
language plpgsql stable  -- (not sql: its body names functions of files applied after this one)
as $$
begin
    return exists (
               select from @schema@.pge_projection_progress p
               join @schema@.pge_projection_definitions d on d.name = p.name and d.lifecycle = 'async'
               where p.status = 'build'
                  or (p.status = 'running' and exists (
                        select from @schema@.pge_records() r  -- (archived streams left out)
                        where (r.tx_id, r.position) > (p.last_tx, p.last_position)
                          and (r.tx_id, r.position) <= (select l.tx_id, l.position from @schema@.pge_log_end() l))))
        or exists (select from @schema@.pge_dead_letters l where l.retry)
        or exists (select from @schema@.pge_projection_versions v where v.status = 'pending');
end;
$$;
