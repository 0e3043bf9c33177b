-- The indexes of declared fields on projections' document tables.
-- Applied by `jsproj migrate` after the migrations, whenever this file
-- changes (src/jsproj/migrate.py): `create or replace` only, with
-- search_path set to the store's schema; inside function bodies @schema@
-- is the quoted schema name. A signature change is a migration that drops
-- the old function.
--
-- A declared field gets a btree index on (its jsonb value, null when missing;
-- id): the expression src/jsproj/views.py queries with (key_expression), so
-- that one index serves equality, ranges, ordering by the field, and keyset
-- pages whose ties are in id order. jsonb, not text (#>>): numbers order as
-- numbers. jsproj recognises its own indexes by name (pge_ix_<projection>_<md5
-- of the field, 8 hex digits>: at most 63 bytes, as names are at most 47) AND
-- a comment 'jsproj index: <field>'; it never drops an index without both.

-- The name of a field's index on the document table, or on a build's staging
-- table (renamed when the build is swapped in: names are unique per schema).
create or replace function pge_index_name(projection text, field text, staging boolean default false) returns text
language sql immutable
as $$
    select case when staging then 'pge_bx_' else 'pge_ix_' end || lower(projection) || '_' || left(md5(field), 8)
$$;

-- Make the indexes of a projection's declared fields on its document table
-- (staging: its build's staging table), and drop those jsproj made there of
-- fields no longer declared. Returns {created: [fields], dropped: [fields]}.
-- An aggregate (one document), a projection without a table: nothing.
create or replace function pge_sync_indexes(projection text, staging boolean default false) returns jsonb
language plpgsql
as $$
declare
    v_table text := case when staging then 'pge_build_' else 'pge_projections_' end || lower(projection);
    v_relation regclass;
    v_fields text[];
    v_field text;
    v_index record;
    v_created jsonb := '[]';
    v_dropped jsonb := '[]';
begin
    select d.indexes into v_fields from @schema@.pge_projection_definitions d
    where d.name = projection and d.kind <> 'aggregate';
    v_relation := to_regclass(format('%s.%I', '@schema@', v_table));
    if v_fields is null or v_relation is null then
        return jsonb_build_object('created', v_created, 'dropped', v_dropped);
    end if;
    for v_index in
        select c.relname, substr(obj_description(c.oid, 'pg_class'), length('jsproj index: ') + 1) as field
        from pg_index i join pg_class c on c.oid = i.indexrelid
        where i.indrelid = v_relation and obj_description(c.oid, 'pg_class') like 'jsproj index: %'
          and c.relname like case when staging then 'pge\_bx\_%' else 'pge\_ix\_%' end
    loop
        if not v_index.field = any(v_fields) or v_index.relname <> @schema@.pge_index_name(projection, v_index.field, staging) then
            execute format('drop index @schema@.%I', v_index.relname);
            v_dropped := v_dropped || to_jsonb(v_index.field);
        end if;
    end loop;
    foreach v_field in array v_fields loop
        -- The rule of views.field_path and the DSL's .index(): the field becomes a SQL literal below.
        if v_field !~ '^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,15}$' or length(v_field) > 200 then
            raise exception using errcode = 'JP400',
                message = format('%s: index field %s is not a dotted path of names', projection, to_jsonb(v_field));
        end if;
        if not exists (select from pg_index i join pg_class c on c.oid = i.indexrelid
                       where i.indrelid = v_relation
                         and c.relname = @schema@.pge_index_name(projection, v_field, staging)) then
            execute format('create index %I on @schema@.%I ((coalesce(data #> %L::text[], ''null''::jsonb)), id)',
                           @schema@.pge_index_name(projection, v_field, staging), v_table,
                           '{' || replace(v_field, '.', ',') || '}');
            execute format('comment on index @schema@.%I is %L',
                           @schema@.pge_index_name(projection, v_field, staging), 'jsproj index: ' || v_field);
            v_created := v_created || to_jsonb(v_field);
        end if;
    end loop;
    return jsonb_build_object('created', v_created, 'dropped', v_dropped);
end;
$$;

-- After a build's staging table became the document table: its indexes take
-- the document table's names, then follow the definition (a deploy may have
-- changed the declared fields while the build ran).
create or replace function pge_adopt_indexes(projection text) returns jsonb
language plpgsql
as $$
declare
    v_index record;
begin
    for v_index in
        select c.relname, substr(obj_description(c.oid, 'pg_class'), length('jsproj index: ') + 1) as field
        from pg_index i join pg_class c on c.oid = i.indexrelid
        where i.indrelid = to_regclass(format('%s.%I', '@schema@', 'pge_projections_' || lower(projection)))
          and obj_description(c.oid, 'pg_class') like 'jsproj index: %' and c.relname like 'pge\_bx\_%'
    loop
        execute format('alter index @schema@.%I rename to %I', v_index.relname,
                       @schema@.pge_index_name(projection, v_index.field));
    end loop;
    return @schema@.pge_sync_indexes(projection);
end;
$$;
