-- When each event was appended: its transaction's start (now()), set by the
-- store, never by the message. Lag in seconds (jsproj status, the daemon's
-- metrics, the dashboard) is measured from it, not from the event's own
-- `timestamp`, which an import of history sets years back. Events stored
-- before this migration take the time it ran: a column added with a stable
-- default is not written row by row (PostgreSQL keeps the one value).
alter table pge_events add column appended_at timestamptz not null default now();

comment on column pge_events.appended_at is 'When the event was appended (its transaction''s start): lag is measured from it.';
