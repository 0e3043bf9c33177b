-- Archived streams (docs/lifecycle.md): their events stay in pge_events, in
-- place, but no read, live fold, build or rebuild sees them unless it asks,
-- and appends to them are refused until they are unarchived. A column of the
-- stream, not a table of its own: the append already reads the stream's row
-- by its primary key, so checking it costs that row's one more field.
alter table pge_streams add column archived_at timestamptz;

comment on column pge_streams.archived_at is 'When the stream was archived (pge_archive_stream); null: it is not.';
