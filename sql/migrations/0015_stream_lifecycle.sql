-- Archived streams (docs/lifecycle.md): their events stay in pge_events, in
-- place, but no read, live fold, build or rebuild sees them unless it asks,
-- and appends to them are refused until they are unarchived. A column of the
-- stream, not a table of its own: the append already reads the stream's row
-- by its primary key, so checking it costs that row's one more field.
alter table pge_streams add column archived_at timestamptz;

comment on column pge_streams.archived_at is 'When the stream was archived (pge_archive_stream); null: it is not.';

-- Erasures (docs/lifecycle.md#erasing-events): what pge_erase_events did,
-- without what it erased. The events keep their row, position, version,
-- type and times, so every reader's order holds; their data and metadata
-- are replaced by a marker naming the erasure. reason is the caller's (an
-- erasure request's reference, say): jsproj never writes erased data here.
create table pge_erasures (
    id         bigint generated always as identity primary key,
    erased_at  timestamptz not null default now(),
    erased_by  text not null,
    reason     text not null check (length(reason) between 1 and 1000),
    events     bigint not null,
    positions  bigint[] not null
);

comment on table pge_erasures is 'jsproj: every erasure of events (who, when, why, which positions), none of the erased data.';
