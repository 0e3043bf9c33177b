-- The fields a projection's documents are indexed by: declared with .index()
-- in the DSL or [jsproj.indexes] in jsproj.toml, registered by pge_deploy,
-- made and dropped by pge_sync_indexes (sql/functions/indexes.sql). Not part
-- of what makes a projection changed: declaring or removing an index never
-- rebuilds its documents.
alter table pge_projection_definitions add column indexes text[] not null default '{}';
