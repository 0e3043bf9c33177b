-- The indexes of declared fields on projections' document tables.
-- Applied by `jsproj migrate` after the migrations, whenever this file
-- changes (src/jsproj/store/migrate.py): `create or replace` only, with
-- search_path set to the store's schema; inside function bodies @schema@
-- is the quoted schema name. A signature change is a migration that drops
-- the old function.
--
-- A declared field gets a btree index on (its jsonb value, null when missing;
-- id): the expression src/jsproj/projections/views.py queries with (key_expression), so
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

-- What pge_sync_indexes would do to `document_table` (null: a table to be made)
-- for the declared `fields`, doing nothing: {created: [fields], dropped:
-- [fields]}, for pge_deploy_plan.
create or replace function pge_index_plan(projection text, fields text[], document_table regclass) returns jsonb
language sql stable
as $$
    with ours as (
        select c.relname, substr(obj_description(c.oid, 'pg_class'), length('jsproj index: ') + 1) as field
        from pg_index i join pg_class c on c.oid = i.indexrelid
        where i.indrelid = document_table and obj_description(c.oid, 'pg_class') like 'jsproj index: %'
          and c.relname like 'pge\_ix\_%'
    )
    select jsonb_build_object(
        'created', coalesce((select jsonb_agg(f order by n) from unnest(fields) with ordinality as u(f, n)
                             where not exists (select from ours where ours.relname = @schema@.pge_index_name(projection, f))),
                            '[]'),
        'dropped', coalesce((select jsonb_agg(ours.field order by ours.relname) from ours
                             where not ours.field = any(fields)
                                or ours.relname <> @schema@.pge_index_name(projection, ours.field)), '[]'))
$$;

-- The indexes a user made on a projection's document table: not its primary
-- key, not jsproj's declared-field indexes, not those backing a constraint
-- (unique or exclusion constraints are not carried over to a build). Each
-- with the statement that makes it on `target` (a format() string: the name
-- is its %I), and its comment.
create or replace function pge_user_indexes(projection text, target text)
    returns table (name text, staged text, statement text, comment text)
language sql stable
as $$
    select c.relname::text, 'pge_bu_' || left(md5(lower(projection) || '/' || c.relname), 16),
           -- What pg_get_indexdef gives after the table's name (' USING ' the method, columns, expressions,
           -- options, predicate), under a new name and table; its % doubled for format().
           format('create %sindex %%I on %s.%I ', case when i.indisunique then 'unique ' else '' end,
                  '@schema@', target)
             || replace(substr(d.def, strpos(d.def, ' USING ') + 1), '%', '%%'),
           obj_description(c.oid, 'pg_class')
    from pg_index i join pg_class c on c.oid = i.indexrelid,
         -- 'CREATE [UNIQUE] INDEX name ON table USING ...': what follows the name and ' ON ' is the table
         lateral (select substr(pg_get_indexdef(i.indexrelid),
                                length(format('CREATE %sINDEX %s ON ', case when i.indisunique then 'UNIQUE ' else '' end,
                                              quote_ident(c.relname))) + 1) as def) d
    where i.indrelid = to_regclass(format('%s.%I', '@schema@', 'pge_projections_' || lower(projection)))
      and not i.indisprimary
      and not exists (select from pg_constraint k where k.conindid = i.indexrelid)
      and coalesce(obj_description(c.oid, 'pg_class'), '') not like 'jsproj index: %'
      and c.relname not like 'pge\_ix\_%'
$$;

-- Make the user's indexes of a projection's document table on its build's
-- staging table (under pge_bu_ names, renamed at the swap), with the rows
-- already in: outside the swap's transaction, where readers would wait for
-- them. Returns the names of the indexes staged.
create or replace function pge_stage_user_indexes(projection text) returns text[]
language plpgsql
as $$
declare
    v_index record;
    v_staged text[] := '{}';
begin
    for v_index in select * from @schema@.pge_user_indexes(projection, 'pge_build_' || lower(projection)) loop
        begin  -- an index the new documents cannot have (a unique one, an expression that fails) is not kept
            if to_regclass(format('%s.%I', '@schema@', v_index.staged)) is null then
                execute format(v_index.statement, v_index.staged);
            end if;
            v_staged := v_staged || v_index.name;
        exception when others then
            raise warning 'jsproj: index % of projection % is not kept by its rebuild: %', v_index.name, projection, sqlerrm;
        end;
    end loop;
    return v_staged;
end;
$$;

-- The user's triggers of a live document table (an audit, a NOTIFY), made on
-- the staging table that replaces it, enabled as they were and with their
-- comments: from the catalog's definition, with the table's name after the
-- trigger's own replaced (its function named as this search_path sees it,
-- the search_path the CREATE runs under).
-- One this role may not make (EXECUTE on its function, say) is left out with
-- a warning, as an index the new documents cannot have is: the swap goes on.
create or replace function pge_copy_triggers(projection text, live regclass, staging text) returns void
language plpgsql
as $$
declare
    v_trigger record;
    -- (pg_get_triggerdef qualifies the table's name always; its function's as this search_path needs)
    v_from text := (select format(' ON %I.%I ', n.nspname, c.relname)
                    from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = live);
    v_rest text;
    v_at int;
begin
    for v_trigger in
        select t.tgname, t.tgenabled, pg_get_triggerdef(t.oid) as statement, obj_description(t.oid, 'pg_trigger') as comment,
               -- what precedes the timing and events: "CREATE [CONSTRAINT] TRIGGER name " (a name may hold " ON ")
               length(format('CREATE %sTRIGGER %I ', case when t.tgconstraint <> 0 then 'CONSTRAINT ' else '' end, t.tgname))
                   as head
        from pg_trigger t where t.tgrelid = live and not t.tgisinternal order by t.tgname
    loop
        begin  -- the first " ON table " after the name (the events are of jsproj's columns) names the staging table
            v_rest := substr(v_trigger.statement, v_trigger.head + 1);
            v_at := position(v_from in v_rest);
            if v_at = 0 then
                raise exception 'its definition does not name the table as expected: %', v_trigger.statement;
            end if;
            execute left(v_trigger.statement, v_trigger.head) || left(v_rest, v_at - 1)
                    || format(' ON @schema@.%I ', staging) || substr(v_rest, v_at + length(v_from));
            if v_trigger.tgenabled <> 'O' then
                execute format('alter table @schema@.%I %s trigger %I', staging,
                               case v_trigger.tgenabled when 'D' then 'disable' when 'R' then 'enable replica'
                                                        else 'enable always' end, v_trigger.tgname);
            end if;
            if v_trigger.comment is not null then
                execute format('comment on trigger %I on @schema@.%I is %L', v_trigger.tgname, staging, v_trigger.comment);
            end if;
        exception when others then
            raise warning 'jsproj: trigger % of projection % is not kept by its rebuild: %', v_trigger.tgname, projection, sqlerrm;
        end;
    end loop;
end;
$$;

-- Swap a build's staging table in as a projection's document table, keeping
-- what a user gave the live one: its GRANTs (table privileges; column ones
-- are not carried over), its row-level security and policies (a grant
-- without them would open every row to a role they restrict), its owner
-- where this role may give it, its comment, and its own indexes (staged by
-- pge_stage_user_indexes; one made since is made here; one dropped since is
-- dropped), and its triggers (pge_copy_triggers). Then the declared
-- fields' indexes take their names (pge_adopt_indexes). The caller holds the
-- transaction: readers see the old table or the new one. keep_as: the old
-- table is not dropped but kept under that name, its indexes renamed
-- <keep_as>_<n> so that the new table's can take theirs (a replaced version,
-- docs/deploy.md#versions).
create or replace function pge_swap_build(projection text, keep_as text default null) returns jsonb
language plpgsql
as $$
declare
    v_live text := 'pge_projections_' || lower(projection);
    v_staging text := 'pge_build_' || lower(projection);
    v_grant record;
    v_policy record;
    v_index jsonb;
    v_kept jsonb;
    v_table oid := to_regclass(format('%s.%I', '@schema@', 'pge_projections_' || lower(projection)));
    v_n int;
    v_old_index record;
begin
    for v_policy in
        select p.polname, p.polpermissive,
               case p.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update'
                             when 'd' then 'delete' else 'all' end as command,
               coalesce((select string_agg(case when r = 0 then 'public' else quote_ident(pg_get_userbyid(r)) end, ', ')
                         from unnest(p.polroles) as r), 'public') as roles,
               pg_get_expr(p.polqual, p.polrelid) as qual, pg_get_expr(p.polwithcheck, p.polrelid) as checked
        from pg_policy p where p.polrelid = v_table
    loop
        execute format('create policy %I on @schema@.%I as %s for %s to %s%s%s', v_policy.polname, v_staging,
                       case when v_policy.polpermissive then 'permissive' else 'restrictive' end, v_policy.command,
                       v_policy.roles,
                       case when v_policy.qual is not null then ' using (' || v_policy.qual || ')' else '' end,
                       case when v_policy.checked is not null then ' with check (' || v_policy.checked || ')' else '' end);
    end loop;
    if (select relrowsecurity from pg_class where oid = v_table) then
        execute format('alter table @schema@.%I enable row level security', v_staging);
    end if;
    if (select relforcerowsecurity from pg_class where oid = v_table) then
        execute format('alter table @schema@.%I force row level security', v_staging);
    end if;
    for v_grant in
        select a.privilege_type, a.is_grantable,
               case when a.grantee = 0 then 'public' else quote_ident(r.rolname) end as grantee
        from pg_class t cross join lateral aclexplode(t.relacl) a left join pg_roles r on r.oid = a.grantee
        where t.oid = to_regclass(format('%s.%I', '@schema@', v_live)) and a.grantee <> t.relowner
    loop
        execute format('grant %s on @schema@.%I to %s%s', v_grant.privilege_type, v_staging, v_grant.grantee,
                       case when v_grant.is_grantable then ' with grant option' else '' end);
    end loop;
    execute format('comment on table @schema@.%I is %L', v_staging,
                   obj_description(to_regclass(format('%s.%I', '@schema@', v_live)), 'pg_class'));
    perform @schema@.pge_copy_triggers(projection, v_table, v_staging);
    v_kept := coalesce((select jsonb_agg(to_jsonb(u)) from @schema@.pge_user_indexes(projection, v_live) u), '[]');
    begin  -- the live table's owner owns the new one, where this role may give it (a member of that role)
        execute format('alter table @schema@.%I owner to %I', v_staging,
                       (select pg_get_userbyid(relowner) from pg_class where oid = v_table));
    exception when insufficient_privilege then
        raise warning 'jsproj: the rebuilt table of % is owned by %, not by the old one''s owner', projection, current_user;
    end;
    if keep_as is null then
        execute format('drop table if exists @schema@.%I', v_live);
    else
        v_n := 0;
        for v_old_index in select c.relname from pg_index i join pg_class c on c.oid = i.indexrelid
                           where i.indrelid = to_regclass(format('%s.%I', '@schema@', v_live)) order by c.relname loop
            v_n := v_n + 1;
            execute format('alter index @schema@.%I rename to %I', v_old_index.relname, keep_as || '_' || v_n);
        end loop;
        execute format('alter table @schema@.%I rename to %I', v_live, keep_as);
    end if;
    execute format('alter table @schema@.%I rename to %I', v_staging, v_live);
    execute format('alter index @schema@.%I rename to %I', v_staging || '_pkey', v_live || '_pkey');
    for v_index in select * from jsonb_array_elements(v_kept) loop
        begin  -- one the new documents cannot have is not kept (as in pge_stage_user_indexes)
            if to_regclass(format('%s.%I', '@schema@', v_index ->> 'staged')) is not null then
                execute format('alter index @schema@.%I rename to %I', v_index ->> 'staged', v_index ->> 'name');
            else
                execute format(v_index ->> 'statement', v_index ->> 'name');
            end if;
            execute format('comment on index @schema@.%I is %L', v_index ->> 'name', v_index ->> 'comment');
        exception when others then
            raise warning 'jsproj: index % of projection % is not kept by its rebuild: %',
                v_index ->> 'name', projection, sqlerrm;
        end;
    end loop;
    for v_index in  -- staged for an index the user dropped during the build: not kept
        select to_jsonb(c.relname) as name from pg_index i join pg_class c on c.oid = i.indexrelid
        where i.indrelid = to_regclass(format('%s.%I', '@schema@', v_live)) and c.relname like 'pge\_bu\_%'
    loop
        execute format('drop index @schema@.%I', v_index #>> '{}');
    end loop;
    return @schema@.pge_adopt_indexes(projection);
end;
$$;
