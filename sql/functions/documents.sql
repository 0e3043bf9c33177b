-- Documents: which table holds a projection's, which documents a batch
-- touches (routing by rule), loading them locked, writing an engine's changes.
-- Applied by `jsproj migrate` after the migrations, whenever this file
-- changes (src/jsproj/store/migrate.py): `create or replace` only, with
-- search_path set to the store's schema; inside function bodies @schema@
-- is the quoted schema name (qualified names instead of a SET search_path
-- clause, which costs ~100 us per call). A signature change is a migration
-- that drops the old function.

-- Documents are looked up by index, whatever the table's size when a
-- session first ran the statement: `x in (select jsonb_array_elements...)`
-- let the planner hash-join a whole table, and a plan PL/pgSQL cached while
-- a table was small keeps scanning it after it has grown (until an
-- ANALYZE). So lookups by key are planned at each call (EXECUTE) or driven
-- by the keys (correlated lookups by id, `= any (array(...))`).

-- The table holding a projection's documents. (PL/pgSQL, not SQL, here and
-- in pge_route: PostgreSQL 15 plans a SQL function's query at every call it
-- cannot inline, ~50-200 us of each append; PL/pgSQL keeps the plan for the
-- session. Both read pge_projection_definitions, a table of a few rows.)
create or replace function pge_document_table(projection text) returns text
language plpgsql stable
as $$
begin
    return (select case d.kind when 'aggregate' then 'pge_aggregates' else 'pge_projections_' || lower(d.name) end
            from @schema@.pge_projection_definitions d where d.name = projection);
end;
$$;

-- The documents a batch touches, for projections routed by rule: a stream
-- projection touches the stream's document, an aggregate its one document.
-- Returns {name: [ids]} like the engine's route (which the engine's tests
-- compare it with); views are routed by the engine (their identifiedBy), and
-- event projections load nothing.
create or replace function pge_route(stream_ids text[], stream_types text[], event_types text[], projections text[]) returns jsonb
language plpgsql stable
as $$
begin
    return (
        select coalesce(jsonb_object_agg(k.name, k.ids), '{}')
        from (select d.name, jsonb_agg(distinct case d.kind when 'stream' then r.stream_id else d.name end) as ids
              from unnest(stream_ids, stream_types, event_types) as r (stream_id, stream_type, event_type)
              join @schema@.pge_projection_definitions d
                on d.name = any (projections)
               and ((d.kind = 'stream' and d.stream_type = r.stream_type)
                    or (d.kind = 'aggregate' and (d.any_event or r.event_type = any (d.event_types))))
              group by d.name) as k);
end;
$$;

-- Lock and load the documents named by a route answer ({name: [ids]}):
-- returns {name: {id: document or null}}. Locks are transaction advisory
-- locks on (1246974037, hash of name and id), taken in one global order so
-- that concurrent appends never deadlock; they also cover documents that do
-- not exist yet, which row locks cannot.
create or replace function pge_load_documents(keys jsonb) returns jsonb
language plpgsql
as $$
begin
    perform pg_advisory_xact_lock(1246974037, k.lock)
    from (select distinct hashtext(n || chr(31) || i) as lock
          from jsonb_each(keys) as t (n, ids), jsonb_array_elements_text(ids) as i) as k
    order by k.lock;
    return @schema@.pge_read_documents(keys);
end;
$$;

-- Load the documents named by a route answer without locking them: for
-- async projections, whose documents only the daemon holding the
-- projection's (or partition's) session lock writes -- and a page of
-- thousands of documents would otherwise take thousands of locks.
create or replace function pge_read_documents(keys jsonb) returns jsonb
language plpgsql stable
as $$
declare
    v_name text;
    v_ids jsonb;
    v_table text;
    v_found jsonb;
    v_documents jsonb := '{}';
begin
    for v_name, v_ids in select * from jsonb_each(keys) loop
        v_table := @schema@.pge_document_table(v_name);
        if v_table is null then
            raise exception using errcode = 'JP404', message = format('there is no deployed projection %s', v_name);
        end if;
        if v_table = 'pge_aggregates' then
            select jsonb_object_agg(k, (select a.data from @schema@.pge_aggregates a where a.name = k)) into v_found
            from jsonb_array_elements_text(v_ids) as k;
        else  -- one index lookup per id, whatever the planner guesses of the table's size
            execute format('select jsonb_object_agg(k, (select d.data from @schema@.%I d where d.id = k))
                            from jsonb_array_elements_text($1) as k', v_table)
                into v_found using v_ids;
        end if;
        v_documents := v_documents || jsonb_build_object(v_name, coalesce(v_found, '{}'));
    end loop;
    return v_documents;
end;
$$;

-- Write an apply answer's changes: {name: {kind, upserts: {id: document}, deletes: [ids]}}.
create or replace function pge_write_changes(changes jsonb) returns void
language plpgsql
as $$
declare
    v_name text;
    v_change jsonb;
    v_table text;
begin
    for v_name, v_change in select * from jsonb_each(changes) loop
        v_table := @schema@.pge_document_table(v_name);
        if v_table is null then
            raise exception using errcode = 'JP404', message = format('there is no deployed projection %s', v_name);
        end if;
        if v_table = 'pge_aggregates' then
            insert into @schema@.pge_aggregates as a (name, data)
            select key, value from jsonb_each(v_change -> 'upserts')
            on conflict (name) do update set data = excluded.data, updated_at = now();
            delete from @schema@.pge_aggregates
            where name = any (array(select jsonb_array_elements_text(v_change -> 'deletes')));
        else  -- dynamic SQL is planned at every execution: run only what there is to do
            if v_change -> 'upserts' <> '{}' then
                execute format('insert into @schema@.%I as d (id, data) select key, value from jsonb_each($1)
                                on conflict (id) do update set data = excluded.data, updated_at = now()', v_table)
                    using v_change -> 'upserts';
            end if;
            if v_change -> 'deletes' <> '[]' then
                execute format('delete from @schema@.%I where id = any (array(select jsonb_array_elements_text($1)))',
                               v_table)
                    using v_change -> 'deletes';
            end if;
        end if;
    end loop;
end;
$$;
