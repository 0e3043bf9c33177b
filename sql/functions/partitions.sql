-- The partitioned log (docs/partitioning.md): pge_events as a table
-- range-partitioned by position. Applied by `jsproj migrate` after the
-- migrations, whenever this file changes (src/jsproj/store/migrate.py):
-- `create or replace` only, with search_path set to the store's schema;
-- inside function bodies @schema@ is the quoted schema name.
--
-- A partitioned table has no unique index that leaves out the partition
-- key, so each partition keeps its own unique (id) and unique (stream_id,
-- version); what spans partitions is pge_append's: the stream's advisory
-- lock and a read of its version in a statement snapshot taken after it
-- (read committed), and, on a partitioned log, the advisory locks of the
-- message's given $ids, then the check that none is stored, in a statement
-- snapshot taken after them (pge_lock_event_ids). A snapshot older than
-- the transaction's last statement (repeatable read, serializable) could
-- miss an event in another partition: such appends to a partitioned log
-- are refused (pge_log_read_committed). Reads are unchanged: they name
-- pge_events.

-- Whether pge_events is partitioned (pge_log_switch wrote the layout row).
create or replace function pge_log_partitioned() returns boolean
language sql stable
as $$
    select exists (select from @schema@.pge_log_layout)
$$;

-- Raises JPL02 when the log is partitioned and the transaction reads an
-- older snapshot than its statement's (repeatable read, serializable): its
-- append could not see an event another transaction committed meanwhile in
-- an older partition, which no unique index spans (the header says why).
-- Called where such an append reads the stream or checks $ids.
create or replace function pge_log_read_committed() returns void
language plpgsql
as $$
begin
    if current_setting('transaction_isolation') <> 'read committed' and @schema@.pge_log_partitioned() then
        raise exception using errcode = 'JPL02', message = format(
            'appends to a partitioned log run in read committed, not %s: a snapshot taken before the append could miss '
            'an event stored meanwhile in another partition (docs/partitioning.md)', current_setting('transaction_isolation'));
    end if;
end;
$$;

-- On a partitioned log: the transaction-scoped advisory locks of a
-- message's (or a batch's) given $ids (1246974042, hash of the id), in one
-- order, taken before the check that none is stored and before the stream
-- locks (a batch locks all of its $ids first): of two appends giving the
-- same new $id at once, the second waits for the first and then finds it
-- stored -- what unique (id) does on one table, whatever partitions their
-- positions fall in. True when it locked; false on a log of one table,
-- whose unique index does it.
create or replace function pge_lock_event_ids(ids text[]) returns boolean
language plpgsql
as $$
begin
    if not @schema@.pge_log_partitioned() then
        return false;
    end if;
    perform @schema@.pge_log_read_committed();
    if cardinality(ids) <= 64 then  -- (no block for the common message: a block's subtransaction costs each call)
        perform pg_advisory_xact_lock(1246974042, h)
        from (select distinct hashtext(i) as h from unnest(ids) as u (i) order by h) as locks;
        return true;
    end if;
    begin
        perform pg_advisory_xact_lock(1246974042, h)
        from (select distinct hashtext(i) as h from unnest(ids) as u (i) order by h) as locks;
    exception when out_of_memory then  -- the lock table is full, as for a batch's streams (pge_stream_problem)
        raise exception using errcode = 'JP413', message = format(
            'the message gives %s event $ids, more locks than PostgreSQL''s lock table has room for '
            '(max_locks_per_transaction = %s): append it in smaller messages, or raise max_locks_per_transaction',
            cardinality(ids), current_setting('max_locks_per_transaction'));
    end;
    return true;
end;
$$;

-- The partitions of pge_events (none when it is one table), oldest first:
-- name, bounds (lower null: from the first position), tablespace (null: the
-- database's default) and bytes (heap, indexes and TOAST).
create or replace function pge_log_partitions()
returns table (name text, lower bigint, upper bigint, tablespace text, bytes bigint)
language sql stable
as $$
    select c.relname::text, (regexp_match(b.bound, 'FROM \(''?(-?\d+)'))[1]::bigint,
           (regexp_match(b.bound, 'TO \(''?(-?\d+)'))[1]::bigint, t.spcname::text, pg_total_relation_size(c.oid)
    from pg_inherits i
    join pg_class c on c.oid = i.inhrelid
    cross join lateral (select pg_get_expr(c.relpartbound, c.oid) as bound) as b
    left join pg_tablespace t on t.oid = c.reltablespace
    where i.inhparent = '@schema@.pge_events'::regclass
    order by 3
$$;

-- What pge_log_switch cannot carry over to the partitioned table, named:
-- objects that point at pge_events by its identity (views, rules, SQL
-- functions with a body of statements, foreign keys to it) would stay on
-- the old table, which becomes the first partition; row security policies
-- and publications would have to be made again. None of them is jsproj's:
-- their owner moves them (or drops them) first, then partitions the log.
create or replace function pge_log_blockers(log regclass) returns text[]
language sql stable
as $$
    select coalesce(array_agg(what order by what), '{}') from (
        select format('view or rule %s', r.ev_class::regclass) as what
        from pg_depend d join pg_rewrite r on r.oid = d.objid
        where d.classid = 'pg_rewrite'::regclass and d.refobjid = log and r.ev_class <> log
        union
        select format('function %s', p.oid::regprocedure)
        from pg_depend d join pg_proc p on p.oid = d.objid
        where d.classid = 'pg_proc'::regclass and d.refobjid = log
        union
        select format('foreign key %s of %s', c.conname, c.conrelid::regclass)
        from pg_constraint c where c.confrelid = log
        union
        select format('row security policy %s', p.polname) from pg_policy p where p.polrelid = log
        union
        select format('publication %s', p.pubname)
        from pg_publication_rel r join pg_publication p on p.oid = r.prpubid where r.prrelid = log
        union
        select format('inheriting table %s', i.inhrelid::regclass) from pg_inherits i where i.inhparent = log
    ) as blockers
$$;

-- Makes the next partition, after the last one made: [its end, + the
-- partition size), named pge_events_<n> (n: one more than any such table of
-- the schema, attached or detached), and returns its name. Made as a table
-- of its own and then attached, which takes SHARE UPDATE EXCLUSIVE on
-- pge_events: appends and reads go on meanwhile (CREATE TABLE ... PARTITION
-- OF would take ACCESS EXCLUSIVE). The partitioned indexes make their own
-- (empty) indexes on it; the unique constraints that cannot span partitions
-- (the event id, the stream's version: the header says why) are made as the
-- newest partition has them. Owned by pge_events' owner.
create or replace function pge_log_add_partition() returns text
language plpgsql
as $$
declare
    v_size bigint;
    v_newest oid;
    v_lower bigint;
    v_name text;
    v_constraint record;
begin
    select partition_size into v_size from @schema@.pge_log_layout for update;  -- one maker at a time
    if not found then
        raise exception using errcode = 'JPL01', message = 'pge_events is not partitioned: run `jsproj partition-log` first';
    end if;
    select p.upper, (format('%s.%I', '@schema@', p.name))::regclass into v_lower, v_newest
    from @schema@.pge_log_partitions() p order by p.upper desc limit 1;
    select 'pge_events_' || (coalesce(max(substring(relname from '^pge_events_(\d+)$')::int), 0) + 1) into v_name
    from pg_class where relnamespace = '@schema@'::regnamespace and relname ~ '^pge_events_\d+$';
    execute format('create table %s.%I (like @schema@.pge_events including defaults including constraints '
                   'including storage including comments including statistics including compression)', '@schema@', v_name);
    for v_constraint in
        select c.conname, pg_get_constraintdef(c.oid) as def from pg_constraint c
        where c.conrelid = v_newest and c.contype in ('u', 'x') and c.conparentid = 0 order by c.conname
    loop
        execute format('alter table %s.%I add constraint %I %s', '@schema@', v_name,
                       case when v_constraint.conname ~ '^pge_events_\d+_'
                            then regexp_replace(v_constraint.conname, '^pge_events_\d+_', v_name || '_')
                            else left(v_constraint.conname, 50) || '_' || substring(v_name from 12) end, v_constraint.def);
    end loop;
    execute format('alter table @schema@.pge_events attach partition %s.%I for values from (%s) to (%s)',
                   '@schema@', v_name, v_lower, v_lower + v_size);
    execute format('alter table %s.%I owner to %s', '@schema@', v_name,
                   (select relowner::regrole from pg_class where oid = '@schema@.pge_events'::regclass));
    update @schema@.pge_log_layout set made_to = v_lower + v_size;
    return v_name;
end;
$$;

-- Called by pge_append_message before its insert, when the message will
-- take the position sequence across a multiple of 64 or has more than 64
-- events (the sequence's last value and two integer divisions per append; a
-- lookup here every 64 positions: last, the sequence's last value; coming,
-- the message's events): on a partitioned log, makes partitions until those
-- made reach a quarter of a partition (at least 256 positions) past the append:
-- 2.5M positions of 10M-event partitions, far more than are appended
-- between two looks. Not a whole partition ahead: each partition, empty or
-- not, costs every statement on the log that names no position (it is
-- planned, locked and opened: docs/partitioning.md), so there is at most
-- one empty one. The append makes them rather than a
-- daemon or a cron job: a store without either never runs out. One append
-- does it at a time (the others go on: they look again 64 positions later),
-- waiting at most 50 ms for its locks (a deploy or an erasure holding the
-- log, an ANALYZE...): then the next look tries again. Any other failure is
-- a warning, never the append's.
create or replace function pge_log_extend(last bigint, coming int) returns void
language plpgsql
as $$
declare
    v_layout record;
    v_lock_timeout text;
    v_end bigint;
begin
    select partition_size, made_to into v_layout from @schema@.pge_log_layout;
    if not found then
        return;
    end if;
    v_end := coalesce(last, pg_sequence_last_value(pg_get_serial_sequence('@schema@.pge_events', 'position')), 0) + coming
             + greatest(v_layout.partition_size / 4, 256);
    if v_layout.made_to > v_end or not pg_try_advisory_xact_lock(1246974041, hashtext('@schema@')) then
        return;
    end if;
    v_lock_timeout := current_setting('lock_timeout');
    begin
        perform set_config('lock_timeout', '50ms', true);
        while (select made_to from @schema@.pge_log_layout) <= v_end loop
            perform @schema@.pge_log_add_partition();
        end loop;
        perform set_config('lock_timeout', v_lock_timeout, true);
    exception
        when lock_not_available or object_in_use then
            perform set_config('lock_timeout', v_lock_timeout, true);
        when others then  -- never the append's failure: said (the store's clients log warnings), tried again later
            perform set_config('lock_timeout', v_lock_timeout, true);
            raise warning 'jsproj: the next partition of pge_events could not be made (%: %); the next append 64 '
                          'positions on tries again, `jsproj partition-log --add` makes one now', sqlstate, sqlerrm;
    end;
end;
$$;

-- The switch of `jsproj partition-log` (src/jsproj/store/partitioning.py),
-- in the caller's transaction, once pge_events has a validated constraint
-- pge_events_partition_bound, check (position < bound), that the caller
-- added and validated without holding writers: pge_events becomes
-- pge_events_0, the first partition [MINVALUE, bound), attached with no
-- scan (the constraint proves its bound), under a new partitioned
-- pge_events; its indexes and constraints get the partition's prefix
-- (pge_events_0_...). The new table takes over what was pge_events': its
-- columns, defaults, checks and column comments (LIKE), the position
-- identity (restarted after the old one's last value), every index that
-- can be partitioned (the others stay the partition's own: the header
-- says which and why), triggers (as they were, enabled or not), owner,
-- comment and grants (of the table and of the position sequence). Then
-- the next partition, [bound, bound + partition size) (and more after it
-- if pge_log_extend wants them). Takes ACCESS
-- EXCLUSIVE on pge_events: appends and reads wait for this transaction,
-- whose work is catalog changes only (milliseconds, whatever the log's
-- size). What it cannot carry over is refused first (pge_log_blockers).
create or replace function pge_log_switch(partition_size bigint, bound bigint) returns jsonb
language plpgsql
as $$
declare
    v_log regclass := '@schema@.pge_events'::regclass;
    v_next bigint;
    v_blockers text[];
    v_carried text[];
    v_later text[];
    v_index record;
    v_statement text;
begin
    if exists (select from pg_partitioned_table where partrelid = v_log) then
        raise exception using errcode = 'JPL01', message = 'pge_events is partitioned already';
    end if;
    lock table @schema@.pge_events in access exclusive mode;
    v_blockers := @schema@.pge_log_blockers(v_log);
    if cardinality(v_blockers) > 0 then
        raise exception using errcode = 'JPL01', message = format(
            'pge_events cannot be partitioned while these point at it (they would stay with the old table): %s',
            array_to_string(v_blockers, '; '));
    end if;
    if not exists (select from pg_constraint where conrelid = v_log and conname = 'pge_events_partition_bound'
                   and convalidated and pg_get_constraintdef(oid) = format('CHECK (("position" < %s))', bound))
       or to_regclass('@schema@.pge_events_0') is not null then
        raise exception using errcode = 'JPL01', message = format(
            'pge_events has no validated constraint pge_events_partition_bound check (position < %s), '
            'or a table pge_events_0 is in the way', bound);
    end if;
    v_next := coalesce(pg_sequence_last_value(pg_get_serial_sequence('@schema@.pge_events', 'position')), 0) + 1;
    v_carried := @schema@.pge_log_carried(v_log);
    v_later := @schema@.pge_log_carried_later(v_log);

    alter table @schema@.pge_events rename to pge_events_0;
    for v_index in
        select ic.relname, c.conname from pg_index i join pg_class ic on ic.oid = i.indexrelid
        left join pg_constraint c on c.conindid = i.indexrelid and c.conrelid = v_log
        where i.indrelid = v_log
    loop
        v_statement := case when v_index.relname like 'pge\_events\_%' then 'pge_events_0_' || substring(v_index.relname from 12)
                             else left(v_index.relname, 61) || '_0' end;
        if v_index.conname is not null then
            execute format('alter table @schema@.pge_events_0 rename constraint %I to %I', v_index.conname, v_statement);
        else
            execute format('alter index %s.%I rename to %I', '@schema@', v_index.relname, v_statement);
        end if;
    end loop;
    for v_index in select tgname from pg_trigger where tgrelid = v_log and not tgisinternal loop
        execute format('drop trigger %I on @schema@.pge_events_0', v_index.tgname);
    end loop;
    alter table @schema@.pge_events_0 alter column position drop identity;
    create table @schema@.pge_events (like @schema@.pge_events_0 including defaults including constraints including storage
        including comments including statistics including compression) partition by range (position);
    alter table @schema@.pge_events drop constraint pge_events_partition_bound;
    alter table @schema@.pge_events alter column position add generated always as identity;
    execute format('alter table @schema@.pge_events alter column position restart with %s', v_next);
    foreach v_statement in array v_carried loop
        execute v_statement;
    end loop;
    execute format('alter table @schema@.pge_events attach partition @schema@.pge_events_0 for values from (minvalue) to (%s)', bound);
    alter table @schema@.pge_events_0 drop constraint pge_events_partition_bound;
    foreach v_statement in array v_later loop
        execute v_statement;
    end loop;
    insert into @schema@.pge_log_layout (partition_size, made_to) values (partition_size, bound);
    v_statement := @schema@.pge_log_add_partition();
    perform @schema@.pge_log_extend(v_next - 1, 0);  -- (more, for partitions smaller than what lies ahead)
    return jsonb_build_object('bound', bound, 'next_position', v_next, 'partition', v_statement);
end;
$$;

-- What pge_log_switch runs on the new pge_events before attaching the old
-- table: its indexes that a partitioned table can have (every index but a
-- unique one without position), each as the old table's definition,
-- which names pge_events: read before the rename, it makes the same index
-- on the new table, and the attach adopts the old table's as its partition's.
create or replace function pge_log_carried(log regclass) returns text[]
language sql stable
as $$
    select coalesce(array_agg(case when c.oid is not null
                                   then format('alter table @schema@.pge_events add constraint %I %s', c.conname, pg_get_constraintdef(c.oid))
                                   else pg_get_indexdef(i.indexrelid) end order by i.indexrelid), '{}')
    from pg_index i
    left join pg_constraint c on c.conindid = i.indexrelid and c.conrelid = log
    where i.indrelid = log
      and (not i.indisunique or (select a.attnum from pg_attribute a where a.attrelid = log and a.attname = 'position') = any (i.indkey))
$$;

-- What pge_log_switch runs once the old table is attached: its owner,
-- comment, grants (of the table, and of the position sequence to the new
-- one's) and triggers, read before the rename. Triggers come last: a row
-- trigger made on the partitioned table is made on each partition too.
create or replace function pge_log_carried_later(log regclass) returns text[]
language sql stable
as $$
    select array[format('alter table @schema@.pge_events owner to %s', c.relowner::regrole),
                 format('comment on table @schema@.pge_events is %L', obj_description(log, 'pg_class'))]
        || array(select format('grant %s on table @schema@.pge_events to %s%s', a.privilege_type,
                               case a.grantee when 0 then 'public' else a.grantee::regrole::text end,
                               case when a.is_grantable then ' with grant option' else '' end)
                 from aclexplode(c.relacl) a where a.grantee <> c.relowner)
        || array(select format('grant %s on sequence %s to %s%s', a.privilege_type,
                               pg_get_serial_sequence('@schema@.pge_events', 'position'),
                               case a.grantee when 0 then 'public' else a.grantee::regrole::text end,
                               case when a.is_grantable then ' with grant option' else '' end)
                 from pg_class s, aclexplode(s.relacl) a
                 where s.oid = pg_get_serial_sequence('@schema@.pge_events', 'position')::regclass and a.grantee <> s.relowner)
        || array(select pg_get_triggerdef(t.oid) || case t.tgenabled
                            when 'D' then format('; alter table @schema@.pge_events disable trigger %I', t.tgname)
                            when 'R' then format('; alter table @schema@.pge_events enable replica trigger %I', t.tgname)
                            when 'A' then format('; alter table @schema@.pge_events enable always trigger %I', t.tgname)
                            else '' end
                 from pg_trigger t where t.tgrelid = log and not t.tgisinternal order by t.tgname)
    from pg_class c where c.oid = log
$$;
