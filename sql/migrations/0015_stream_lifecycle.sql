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

-- Retention per stream type (docs/lifecycle.md#retention), applied by the
-- daemon (and `jsproj retention apply`): 'archive' archives the streams of
-- the type whose last event was appended more than max_age ago (archiving is
-- of whole streams); 'erase' erases the events appended more than max_age
-- ago, those more than max_count behind their stream's last, and those
-- before version truncate_before (erasing is of events, and rebuilds the
-- views they reached).
create table pge_retention (
    stream_type     text primary key check (length(stream_type) between 1 and 255),
    action          text not null check (action in ('archive', 'erase')),
    max_age         interval check (max_age > interval '0'),
    max_count       bigint check (max_count >= 1),
    truncate_before bigint check (truncate_before >= 2),
    updated_at      timestamptz not null default now(),
    check (max_age is not null or max_count is not null or truncate_before is not null),
    check (action = 'erase' or (max_count is null and truncate_before is null))
);

comment on table pge_retention is 'jsproj: retention rules per stream type, applied by the daemon (archive or erase).';
