-- Look events and documents up by index. `x in (select jsonb_array_elements...)`
-- let the planner hash-join a whole table (a sequential scan of pge_events at
-- every Python-engine inline append); `x = any (array(...))` is an index scan.

create or replace function pge_append_records(message jsonb, out result jsonb, out records text,
                                              out generation bigint, out documents jsonb)
language plpgsql
as $$
declare
    v_projections text[];
    v_positions bigint[];
begin
    perform set_config('jsproj.inline_engine', 'python', true);
    result := @schema@.pge_append(message);
    v_positions := array(select jsonb_array_elements_text(result -> 'positions')::bigint);
    v_projections := array(select name from @schema@.pge_projection_definitions
                           where lifecycle = 'inline' and engine = 'python');
    select '[' || string_agg(@schema@.pge_event_record(e.position, e.stream_id, s.type, e.version, e.timestamp,
                                                       e.metadata, e.type, e.id, e.data), ',' order by e.position) || ']',
           @schema@.pge_load_documents(@schema@.pge_route(array_agg(e.stream_id), array_agg(s.type), array_agg(e.type),
                                                          v_projections))
    into records, documents
    from @schema@.pge_events e join @schema@.pge_streams s on s.id = e.stream_id
    where e.position = any (v_positions);
    select g.generation into generation from @schema@.pge_engine g;
end;
$$;

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

create or replace function pge_load_documents(keys jsonb) returns jsonb
language plpgsql
as $$
declare
    v_name text;
    v_ids jsonb;
    v_table text;
    v_found jsonb;
    v_documents jsonb := '{}';
begin
    perform pg_advisory_xact_lock(1246974037, k.lock)
    from (select distinct hashtext(n || chr(31) || i) as lock
          from jsonb_each(keys) as t (n, ids), jsonb_array_elements_text(ids) as i) as k
    order by k.lock;
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
