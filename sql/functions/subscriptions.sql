-- Python subscribers (src/jsproj/follow/subscriptions.py): registering one.
-- Applied by `jsproj migrate` after the migrations, whenever this file
-- changes (src/jsproj/store/migrate.py): `create or replace` only; inside
-- function bodies @schema@ is the quoted schema name.

-- Register a subscription (again: its filters are updated, its checkpoint
-- kept). A new one starts before the first event, or with at_end after the
-- last event no running transaction can precede (so an event of a
-- transaction still in flight is delivered, never skipped). Subscribers are
-- woken by the notify trigger of async projections (sql/functions/async.sql):
-- it is created here when missing, and pge_deploy keeps it while
-- subscriptions exist. Creating it needs the owner of pge_events; checking
-- first means another role can register once the trigger exists. CREATE
-- TRIGGER waits for every open transaction that wrote pge_events, and
-- appends queue behind it meanwhile: it gives up after 100 ms (the
-- subscribers poll instead; the next registration tries again).
create or replace function pge_add_subscription(
    subscription text, wanted_types text[], wanted_stream_types text[], at_end boolean) returns void
language plpgsql
as $$
declare
    v_lock_timeout text := current_setting('lock_timeout');
begin
    insert into @schema@.pge_subscriptions as s (name, event_types, stream_types, last_tx, last_position)
    select subscription, wanted_types, wanted_stream_types, coalesce(h.tx_id, '0'), coalesce(h.position, 0)
    from (select null) as nothing
    left join lateral (select l.tx_id, l.position from @schema@.pge_log_end() l where at_end) as h on true
    on conflict (name) do update
    set event_types = excluded.event_types, stream_types = excluded.stream_types, updated_at = now()
    where s.event_types is distinct from excluded.event_types
       or s.stream_types is distinct from excluded.stream_types;
    if not exists (select from pg_trigger
                   where tgrelid = '@schema@.pge_events'::regclass and tgname = 'pge_events_notify') then
        begin
            perform set_config('lock_timeout', '100ms', true);
            create trigger pge_events_notify after insert on @schema@.pge_events
                for each statement execute function @schema@.pge_notify_daemons();
            perform set_config('lock_timeout', v_lock_timeout, true);
        exception when lock_not_available then
            perform set_config('lock_timeout', v_lock_timeout, true);
            raise notice 'pge_events is busy: the notify trigger was not created (subscribers poll)';
        end;
    end if;
end;
$$;

-- A subscription's lease: the session advisory lock (1246974040, hash of
-- "schema.name") that one runner of a subscription holds while it works
-- (src/jsproj/follow/subscriber.py, js/client/subscription.js); take = false
-- releases it. The runner takes it through this function, running as the
-- store's owner, rather than by pg_try_advisory_lock: where the DBA has
-- revoked the advisory lock functions from PUBLIC (docs/deploy.md#advisory-locks),
-- so that no role may hold back appends by holding jsproj's locks, an
-- application role that runs subscribers still takes its leases, and only
-- those: the class is fixed here and the key is a subscription's name in this
-- store. (The schema's name is read from the catalog: the key is the one
-- `jsproj status` looks for, whatever the schema's name needs quoting.)
create or replace function pge_subscription_lease(subscription text, take boolean) returns boolean
language plpgsql
security definer set search_path = pg_catalog, pg_temp
as $$
declare
    v_key integer := hashtext((select n.nspname from pg_class c join pg_namespace n on n.oid = c.relnamespace
                               where c.oid = '@schema@.pge_subscriptions'::regclass) || '.' || subscription);
begin
    if take then
        return pg_try_advisory_lock(1246974040, v_key);
    end if;
    return pg_advisory_unlock(1246974040, v_key);
end;
$$;
