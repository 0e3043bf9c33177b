-- Whether a projection may write events (KurrentDB's emit and linkTo,
-- docs/from-kurrentdb.md#emit-and-linkto): a permission of its own, given
-- at deploy (--emit NAME) by the store's owner, never by projection code.
-- Only async projections use it: the daemon appends what they emit
-- (sql/functions/emits.sql). Adding a column with a constant default
-- rewrites nothing.
alter table pge_projection_definitions add column emits boolean not null default false;

comment on column pge_projection_definitions.emits is
    'Whether the projection may write events (emit, linkTo): appended by the daemon, async projections only.';

-- The store's key in the ids of emitted events (pge_emitted_id): random,
-- made once, read only by the owner's functions. Without it the ids would
-- be predictable, and a role that appends could take the id of an event a
-- projection will emit before it does -- which the daemon would then take
-- for its own, and never append. No role is granted anything on it.
create table pge_emit_key (
    one boolean primary key default true check (one),
    key uuid not null default gen_random_uuid()
);
insert into pge_emit_key default values;
