-- Async projections: waking the daemons when events are appended.
-- Applied by `jsproj migrate` after the migrations, whenever this file
-- changes (src/jsproj/migrate.py): `create or replace` only, with
-- search_path set to the store's schema; inside function bodies @schema@
-- is the quoted schema name (qualified names instead of a SET search_path
-- clause, which costs ~100 us per call). A signature change is a migration
-- that drops the old function.

-- Wakes daemons (LISTEN pge_events) when events are appended; polling stays the source of truth.
create or replace function pge_notify_daemons() returns trigger
language plpgsql
as $$
begin
    perform pg_notify('pge_events', '');
    return null;
end;
$$;
