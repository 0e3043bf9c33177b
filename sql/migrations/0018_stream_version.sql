-- A stream's version, and whether its last event is a tombstone ($deleted),
-- kept on its row by every append (pge_append_message): an append reads its
-- stream by the row's key, not its last event from the log, which on a
-- partitioned log (docs/partitioning.md) looks in every partition, at a cost
-- that grows with their number (bench/scale.py). Null: not known yet -- a
-- stream appended to before this migration, or loaded into the tables by
-- hand -- and read from the log by its next append, once. Adding them
-- rewrites nothing (nullable, no default): the migration is instant at any
-- size.
alter table pge_streams add column version bigint, add column deleted boolean;

comment on column pge_streams.version is
    'The stream''s version (its last event''s), kept by every append; null: not known yet (read from pge_events).';
comment on column pge_streams.deleted is
    'Whether the stream''s last event is its tombstone ($deleted), kept by every append; null: not known yet.';

-- Every append updates its stream's row: room on its page keeps the update a
-- heap-only one (no new index entries; version and deleted are in no index).
alter table pge_streams set (fillfactor = 90);
