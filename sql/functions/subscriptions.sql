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
