-- One async projection across several daemons: a stream or view projection
-- may be split by a hash of its document keys (js/lib/policies.js) into
-- partitions, each with its own progress row -- and its own advisory lock,
-- so that each is worked on by one daemon at a time, and taken over when
-- that daemon dies. A projection with one partition has the one row it had.
alter table pge_projection_definitions
    add column partitions int not null default 1 check (partitions between 1 and 256);

alter table pge_projection_progress add column partition int not null default 0 check (partition >= 0);
-- Moved each time the projection is to be built again (a deploy, a rebuild):
-- a page computed before that, by a daemon that has not seen it yet, finds
-- the epoch changed and writes nothing -- even when the build ended at the
-- very position the page starts from. A build swaps in only if the epoch is
-- still the one it started with.
alter table pge_projection_progress add column epoch bigint not null default 0;
alter table pge_projection_progress drop constraint pge_projection_progress_pkey;
alter table pge_projection_progress add primary key (name, partition);

-- The backend of each daemon's control connection: a daemon that died
-- (kill -9, a lost machine) stops counting at once, instead of after its
-- heartbeat goes stale, so the others take its share over without delay.
alter table pge_daemons add column backend_pid int;

-- The partitions of its projection an event was dead-lettered for: a
-- partition's daemon skips an event only for its own documents (the others
-- may have applied it to theirs), so a retry applies it again only there.
alter table pge_dead_letters add column partitions int[] not null default '{0}';
-- The partitions that tried a requested retry and failed again: the request
-- stands until every partition the event is dead-lettered for has tried.
alter table pge_dead_letters add column retried int[] not null default '{}';
