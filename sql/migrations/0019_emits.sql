-- Whether a projection may write events (KurrentDB's emit and linkTo,
-- docs/from-kurrentdb.md#emit-and-linkto): a permission of its own, given
-- at deploy (--emit NAME) by the store's owner, never by projection code.
-- Only async projections use it: the daemon appends what they emit
-- (sql/functions/emits.sql). Adding a column with a constant default
-- rewrites nothing.
alter table pge_projection_definitions add column emits boolean not null default false;

comment on column pge_projection_definitions.emits is
    'Whether the projection may write events (emit, linkTo): appended by the daemon, async projections only.';
