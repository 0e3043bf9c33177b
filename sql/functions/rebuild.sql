-- Rebuilding a projection's documents from the event log with the
-- in-database engine.
-- Applied by `jsproj migrate` after the migrations, whenever this file
-- changes (src/jsproj/store/migrate.py): `create or replace` only, with
-- search_path set to the store's schema; inside function bodies @schema@
-- is the quoted schema name (qualified names instead of a SET search_path
-- clause, which costs ~100 us per call). A signature change is a migration
-- that drops the old function.

-- Rebuild a projection's documents from the whole event log with the
-- in-database engine, in pages, in the order readers see (transaction, position).
create or replace function pge_rebuild(projection text, page_size int default 5000) returns bigint
language plpgsql
as $$
declare
    v_table text := @schema@.pge_document_table(projection);
    v_tx xid8 := '0';
    v_position bigint := 0;
    v_records text;
    v_routed jsonb;
    v_count bigint;
    v_total bigint := 0;
begin
    if v_table is null then
        raise exception using errcode = 'JP404', message = format('there is no deployed projection %s', projection);
    end if;
    if v_table = 'pge_aggregates' then
        delete from @schema@.pge_aggregates where name = projection;
    else
        execute format('truncate @schema@.%I', v_table);
    end if;
    loop
        select '[' || string_agg(page.record, ',' order by page.tx_id, page.position) || ']', count(*),
               (array_agg(page.tx_id order by page.tx_id desc, page.position desc))[1],
               (array_agg(page.position order by page.tx_id desc, page.position desc))[1],
               @schema@.pge_route(array_agg(page.stream_id), array_agg(page.stream_type), array_agg(page.type),
                                  array[projection])
        into v_records, v_count, v_tx, v_position, v_routed
        from (select r.tx_id, r.position, r.stream_id, r.stream_type, r.type, r.record
              from @schema@.pge_records() r
              where (r.tx_id, r.position) > (v_tx, v_position)
              order by r.tx_id, r.position
              limit page_size) as page;
        exit when v_count = 0;
        perform @schema@.pge_apply_records(v_records, v_routed, array[projection]);
        v_total := v_total + v_count;
    end loop;
    return v_total;
end;
$$;
