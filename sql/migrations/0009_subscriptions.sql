-- Python subscribers (src/jsproj/subscriptions.py, docs/subscriptions.md):
-- host-language handlers that receive every event in the order readers see
-- (transaction, position). A row per subscription holds its checkpoint --
-- the last event it read, filtered out or handled -- which the runner moves
-- in the same transaction as the handler's own writes, with a
-- compare-and-set, so the two commit together or not at all.
create table pge_subscriptions (
    name          text primary key check (name ~ '^[A-Za-z_][A-Za-z0-9_.:-]{0,99}$'),
    last_tx       xid8 not null default '0',
    last_position bigint not null default 0,
    -- The events handed to the handler (those its filters let through).
    events        bigint not null default 0,
    -- 'running'; 'retrying' (on_error='retry': the handler failed on the
    -- event after the checkpoint and is being called again); 'stopped'
    -- (on_error='stop': the runner gave up on that event; the next run
    -- calls the handler on it again). error: the last failure, cleared when
    -- the checkpoint moves past it.
    status        text not null default 'running' check (status in ('running', 'retrying', 'stopped')),
    error         jsonb,
    -- The filters of the last runner (shown by `jsproj status`; null: any).
    event_types   text[],
    stream_types  text[],
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);
