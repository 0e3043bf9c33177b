-- Async projections: waking the daemons when events are appended.
-- Applied by `jsproj migrate` after the migrations, whenever this file
-- changes (src/jsproj/migrate.py): `create or replace` only, with
-- search_path set to the store's schema; inside function bodies @schema@
-- is the quoted schema name (qualified names instead of a SET search_path
-- clause, which costs ~100 us per call). A signature change is a migration
-- that drops the old function.

-- Wakes daemons (LISTEN pge_events) when events are appended; polling stays
-- the source of truth. Transactions that notify commit one at a time (they
-- queue for PostgreSQL's notification lock), so of the appends in flight at
-- once only the one holding a transaction-level advisory lock notifies, and
-- the others go by without waiting: they commit while daemons are awake,
-- and daemons keep polling briefly after any work (src/jsproj/daemon/loop.py),
-- so they are seen within that short poll instead of a notification.
-- bench/scenario_follow.py measures the cost against no trigger at all.
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
