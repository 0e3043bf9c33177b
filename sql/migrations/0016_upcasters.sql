-- Upcasters (docs/dsl.md#upcasters): projection files may declare upcasters
-- and renames of event types, which every engine runs before projections
-- see an event. A file that defines projections is deployed with them
-- (pge_projection_definitions.source); a file that declares only upcasters
-- or renames has no definition row, so it is kept here, and every engine
-- loads both (pge_deployed_files, sql/functions/deploy.sql). A deploy
-- replaces the whole set (pge_deploy_upcasters). hash: SHA-256 of the
-- source, as a definition's.
create table pge_upcaster_files (
    file        text primary key,
    source      text not null,
    hash        text not null,
    deployed_at timestamptz not null default now()
);

comment on table pge_upcaster_files is
    'jsproj: deployed files that declare only upcasters and renames of event types (engines load them with the projections'' files).';
