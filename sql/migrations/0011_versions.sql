-- Versioned projections (docs/deploy.md#versions): a projection declares
-- .version(n). Deploying a new version of an async projection keeps the
-- current definition serving reads and updates, records the new one as
-- pending here, and the daemon builds it beside the current table and
-- switches to it in one transaction; the old table is kept (retired) until
-- a deploy with prune drops it.
alter table pge_projection_definitions
    add column version int not null default 1 check (version between 1 and 999999);

-- A row per version of a projection that is not the deployed one:
--   pending  -- deployed, to be built (definition: the row pge_deploy takes),
--   built    -- built and checked, waiting for `jsproj promote` (promote = 'manual'),
--   failed   -- its build stopped on an event (error); the current version serves on,
--   retired  -- replaced: its documents are kept in table_name until a deploy with prune.
-- events: how far its build has read (`jsproj status`).
create table pge_projection_versions (
    name        text not null,
    version     int not null check (version between 1 and 999999),
    status      text not null check (status in ('pending', 'built', 'failed', 'retired')),
    promote     text not null default 'auto' check (promote in ('auto', 'manual')),
    definition  jsonb,
    table_name  text,
    error       jsonb,
    events      bigint not null default 0,
    deployed_at timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    primary key (name, version)
);
-- At most one version waits to replace a projection's deployed one.
create unique index pge_projection_versions_one_pending on pge_projection_versions (name)
    where status in ('pending', 'built', 'failed');

-- pge_swap_build takes keep_as (the name the replaced table is kept under):
-- a new argument is a new signature, so the old function goes and
-- sql/functions/indexes.sql makes the new one.
drop function if exists pge_swap_build(text);
