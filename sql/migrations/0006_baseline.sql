-- The baseline: every table, column and index of the store, as migrations
-- 0001-0006 of the unreleased versions left them. It stands for versions
-- 1-6: src/jsproj/migrate.py says how a schema those made is accepted.
-- Migrations hold schema changes only (tables, columns, indexes, and the
-- rows those need); every pge_* function lives in sql/functions/*.sql,
-- applied after the migrations. Applied by `jsproj migrate` with
-- search_path set to the store's schema.

-- A stream's version is the version of its last event: pge_append reads it
-- from pge_events under a per-stream advisory lock instead of updating a row
-- here on every append (half the write traffic of single-event appends).
create table pge_streams (
    id          text primary key check (length(id) between 1 and 255),
    type        text not null check (length(type) between 1 and 255),
    created_at  timestamptz not null default now()
);

create table pge_events (
    -- The global position: unique, increasing within a stream and within a transaction.
    position    bigint generated always as identity primary key,
    id          uuid not null unique,
    -- No foreign key to pge_streams: pge_append creates and locks the stream
    -- first, and a per-row key check would cost every append (events are
    -- only ever written through pge_append).
    stream_id   text not null,
    version     bigint not null check (version >= 1),
    type        text not null check (length(type) between 1 and 255),
    -- The event's fields other than $type and $id.
    data        jsonb not null,
    metadata    jsonb,
    timestamp   timestamptz not null default now(),
    -- The appending transaction: gap-safe readers order by (tx_id, position)
    -- and only read transactions older than every one still running.
    tx_id       xid8 not null default pg_current_xact_id(),
    unique (stream_id, version)
);

create index pge_events_tx_order on pge_events (tx_id, position);

comment on table pge_events is 'jsproj: every event, in order. Append with pge_append(message jsonb).';
comment on column pge_events.tx_id is 'The appending transaction; readers follow (tx_id, position) below pg_snapshot_xmin.';

-- Deployed projections (pge_deploy registers them). engine: 'python' (the
-- appending process's sandbox) or an in-database engine, whose
-- pge_engine_call deploy creates from sql/engines/<engine>.sql. on_error
-- is the last column because a later migration of the unreleased versions
-- added it: a schema they made has it there.
create table pge_projection_definitions (
    name        text primary key check (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,46}$'),
    kind        text not null check (kind in ('stream', 'event', 'aggregate', 'view')),
    lifecycle   text not null check (lifecycle in ('inline', 'async', 'live')),
    engine      text not null check (engine in ('python', 'plpython', 'plv8', 'pljs')),
    file        text not null,
    source      text not null,
    hash        text not null,
    stream_type text,
    event_types text[] not null default '{}',
    any_event   boolean not null default false,
    deployed_at timestamptz not null default now(),
    on_error    text not null default 'stop' check (on_error in ('stop', 'dead-letter'))
);
create unique index pge_projection_definitions_lower_name on pge_projection_definitions (lower(name));

-- The documents of every aggregate, by name. Other projections get a table
-- each: pge_projections_<name in lower case> (id, data, updated_at).
create table pge_aggregates (
    name        text primary key,
    data        jsonb not null,
    updated_at  timestamptz not null default now()
);

-- The engine bundle the in-database hosts evaluate, and a generation that
-- every deploy moves, so that a host reloads when the definitions change.
create table pge_engine (
    singleton   boolean primary key default true check (singleton),
    bundle      text not null default '',
    bundle_hash text not null default '',
    generation  bigint not null default 0
);
insert into pge_engine default values;

-- How far each async projection has read, in the order readers see
-- (transaction, position). The daemon moves it with a compare-and-set, in
-- the same transaction as the documents. status: 'build' (documents to be
-- built from scratch, then swapped in), 'running', 'stopped' (see error).
create table pge_projection_progress (
    name          text primary key,
    last_tx       xid8 not null default '0',
    last_position bigint not null default 0,
    events        bigint not null default 0,
    status        text not null default 'build' check (status in ('build', 'running', 'stopped')),
    error         jsonb,
    updated_at    timestamptz not null default now()
);

-- Events an async projection failed on and skipped (policy 'dead-letter').
create table pge_dead_letters (
    id          bigint generated always as identity primary key,
    projection  text not null,
    position    bigint not null,
    event_id    uuid not null,
    stream_id   text not null,
    event_type  text not null,
    error       jsonb not null,
    created_at  timestamptz not null default now(),
    retried_at  timestamptz,
    retry       boolean not null default false,  -- requested by `jsproj retry`; the daemon holding the projection does it
    unique (projection, position)
);

-- Running daemons, for sharing projections fairly and for `jsproj status`.
create table pge_daemons (
    id           text primary key,
    host         text not null,
    pid          int not null,
    started_at   timestamptz not null default now(),
    heartbeat_at timestamptz not null default now()
);
