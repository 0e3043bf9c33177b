-- Reading the log by what happened (docs/reading.md): events by type, by
-- their stream's type (category), by append time, in the gap-safe order
-- readers follow, (tx_id, position). Each index below leads with the
-- filter's key and ends with (tx_id, position), so that a page of one key
-- is a range scan already in the readers' order: the read stops after
-- `limit` entries whatever the log's size, instead of sorting every
-- matching event (bench/scenario_reads.py measures it, and what the
-- indexes cost appends).

-- The stream's type on each of its events. A stream's type never changes
-- (pge_append refuses a message of another type), so the copy is never
-- stale; pge_append writes it with the event. Without it a category read
-- joins pge_streams and walks the whole log in order, filtering: fast
-- when the category is most of the log, a scan of it when it is rare.
-- The copy is made here once, for the events already stored (a rewrite of
-- every row: minutes on a store of tens of millions of events).
alter table pge_events add column stream_type text;
update pge_events e set stream_type = s.type from pge_streams s where s.id = e.stream_id;
alter table pge_events alter column stream_type set not null;

comment on column pge_events.stream_type is 'The type of the event''s stream (never changes): category reads use it.';

-- By event type(s): one range scan per type, merged (src/jsproj/store/reading.py).
create index pge_events_type_order on pge_events (type, tx_id, position);
-- By stream type (category).
create index pge_events_stream_type_order on pge_events (stream_type, tx_id, position);
-- By append time: a BRIN index (a few pages for the whole log; an append
-- touches at most its last range) rather than a btree (another index
-- written on every append). The log is append-only, so appended_at follows
-- the table's physical order and a time window maps to few block ranges;
-- what it finds is sorted into the readers' order. A window of most of the
-- log is read in that order directly, filtered (the planner chooses).
-- Ranges of 16 pages (~1,000 events) rather than 128: a window of minutes
-- on a busy store then rechecks hundreds of events, not thousands.
create index pge_events_appended_at on pge_events using brin (appended_at) with (pages_per_range = 16);
-- No index for metadata containment (@>): a GIN index returns matches in
-- no order, so every gap-safe page would sort all the matches after its
-- cursor, and it is one more index written per event (docs/reading.md has
-- the figures). Such a filter narrows the reads above, or walks the log in
-- order; an owner who reads by a rare value alone may add
-- `create index ... on pge_events using gin (metadata jsonb_path_ops)`.
