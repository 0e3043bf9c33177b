-- The partitioned log (docs/partitioning.md): pge_events may be turned into
-- a table range-partitioned by position (`jsproj partition-log`, which runs
-- pge_log_switch: sql/functions/partitions.sql). This row says it was, and
-- how: no row, the log is one table (every store starts so). The store
-- itself makes the partitions ahead of need (pge_log_extend, from appends
-- crossing a multiple of 64 positions: hence partitions of at least 64
-- events; tests use such small ones, stores millions); made_to is the end of the last one
-- made (exclusive), read there so that an append compares two numbers
-- rather than the catalog's partition bounds.
create table pge_log_layout (
    singleton      boolean primary key default true check (singleton),
    partition_size bigint not null check (partition_size >= 64),
    made_to        bigint not null,
    partitioned_at timestamptz not null default now()
);

comment on table pge_log_layout is
    'jsproj: how pge_events is partitioned (no row: it is not): the size of a partition and the end of the last one made.';

-- The archived streams, by id: every read of the log leaves out their
-- events with a subquery of them (src/jsproj/store/recorded.py), which
-- without this read all of pge_streams -- once per page, and on a
-- partitioned log once per partition (a hashed subplan each). Archived
-- streams are few: the index is small, and appends never write it.
create index pge_streams_archived on pge_streams (id) where archived_at is not null;
