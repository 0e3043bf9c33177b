-- The SQL trust boundary (docs/security.md): what runs with the store
-- owner's rights on behalf of another role (the SECURITY DEFINER entries:
-- pge_append, pge_append_unapplied) and the engine of the JavaScript
-- languages (pge_engine_run) trust nothing a session can set. Every setting
-- that changes what code runs there or its limits is pinned in the
-- function's own SET clause; the engines' configuration is the owner's
-- (pge_engine, written by deploy), never a setting.

-- The settings to pin on function `fn` (regprocedure), as name => value:
--   search_path             pg_catalog, pg_temp (definer entries: every jsproj name they use is qualified)
--   default_tablespace, default_table_access_method
--                           the database's defaults (definer entries: what they create)
--   every plv8.* and pljs.* setting a session can change (pge_pin_settings loads the languages
--   installed first: a library's settings exist once it is loaded, and only then may a role that
--   is not a superuser put them in a function's SET clause):
--     *.start_proc          '' (none): a function of the caller's choosing would run in the owner's
--                           JavaScript context when it is made
--     *.execution_timeout   the engine's time limit (in the setting's unit: milliseconds in jsproj's builds)
--     *.memory_limit        the engine's memory limit (superuser-only: pinned where the role may)
--     any other             its built-in default (plv8.v8_flags: V8's flags, read when the library
--                           loads, which a definer entry may be the first to do)
-- (A setting whose built-in default is unset cannot be pinned by a function:
-- PLV8's icu_data, read only when the library loads; the PLV8 jsproj builds
-- makes it superuser-only: docs/security.md.)
create or replace function pge_pinned_settings(fn regprocedure, timeout double precision, memory_limit int)
returns jsonb
language sql stable
as $$
    select coalesce(jsonb_object_agg(name, value), '{}') from (
        select 'search_path' as name, 'pg_catalog, pg_temp' as value
        from pg_proc where oid = fn and prosecdef
        union all
        -- where and how what a definer entry creates is stored (an append makes a partitioned log's next
        -- partitions, docs/partitioning.md): the database's defaults, never a tablespace or table access
        -- method of the caller's choosing that only the owner may use
        select d.name, d.value
        from pg_proc, (values ('default_tablespace', ''), ('default_table_access_method', 'heap')) as d (name, value)
        where oid = fn and prosecdef
        union all
        select s.name, case
                when s.name like '%.start_proc' then ''
                when s.name like '%.execution_timeout' then  -- in its unit: ms where jsproj's builds have it, else s
                    case s.unit when 'ms' then ceil(timeout * 1000)::int::text else ceil(timeout)::int::text end
                when s.name like '%.memory_limit' then greatest(s.min_val::int, least(s.max_val::int, memory_limit))::text
                else s.boot_val
            end
        from pg_settings s
        where (s.name like 'plv8.%' or s.name like 'pljs.%')
          and (s.context = 'user' or (s.context = 'superuser'
                                      and (select rolsuper from pg_roles where rolname = current_user)))
          and (s.boot_val is not null or s.name similar to '%.(start_proc|execution_timeout|memory_limit)')
    ) as pinned
$$;

-- Pin the settings of every SECURITY DEFINER function of the store and of the
-- JavaScript languages' engine function (ALTER FUNCTION ... SET, only where
-- they differ: unchanged functions keep their cached plans). Run at the end
-- of every schema script (a function file's `create or replace` resets its
-- settings) and by deploy, once the engine's language is loaded. Returns how
-- many settings it changed.
create or replace function pge_pin_settings() returns int
language plpgsql
as $$
declare
    v_engine record;
    v_fn record;
    v_pinned jsonb;
    v_setting record;
    v_changed int := 0;
begin
    -- Load the JavaScript languages installed (their version functions run no JavaScript): their
    -- settings then exist, to be read and pinned.
    for v_setting in
        select p.oid::regprocedure as fn from pg_extension x
        join pg_depend d on d.refclassid = 'pg_extension'::regclass and d.refobjid = x.oid
                        and d.classid = 'pg_proc'::regclass
        join pg_proc p on p.oid = d.objid and p.proname = x.extname || '_version' and p.pronargs = 0
        where x.extname in ('plv8', 'pljs')
    loop
        execute format('select %s', v_setting.fn);
    end loop;
    select timeout, memory_limit into v_engine from @schema@.pge_engine;
    for v_fn in
        select p.oid::regprocedure as fn, coalesce(p.proconfig, '{}') as config
        from pg_proc p join pg_language l on l.oid = p.prolang
        where p.pronamespace = '@schema@'::regnamespace
          and (p.prosecdef or (p.proname = 'pge_engine_run' and l.lanname in ('plv8', 'pljs')))
    loop
        v_pinned := @schema@.pge_pinned_settings(v_fn.fn, v_engine.timeout, v_engine.memory_limit);
        for v_setting in
            select key, value from jsonb_each_text(v_pinned) where key || '=' || value <> all (v_fn.config)
        loop
            if v_setting.key = 'search_path' then  -- a list: as items, not one quoted string
                execute format('alter function %s set search_path = pg_catalog, pg_temp', v_fn.fn);
            else
                execute format('alter function %s set %s = %L', v_fn.fn, v_setting.key, v_setting.value);
            end if;
            v_changed := v_changed + 1;
        end loop;
    end loop;
    return v_changed;
end;
$$;

-- The in-database engines' limits (the same defaults as the Python host's
-- sandbox: 10 s per call, 256 MB) and where plpython3u finds mini-racer, as
-- deploy was given them; then the pins that carry them. A change reloads the
-- engines (the generation moves). Returns whether anything changed.
create or replace function pge_set_engine_settings(timeout double precision, memory_limit int, python_path text)
returns boolean
language plpgsql
as $$
declare
    v_changed boolean;
begin
    update @schema@.pge_engine e
    set timeout = pge_set_engine_settings.timeout, memory_limit = pge_set_engine_settings.memory_limit,
        python_path = pge_set_engine_settings.python_path, generation = e.generation + 1
    where (e.timeout, e.memory_limit, e.python_path) is distinct from
          (pge_set_engine_settings.timeout, pge_set_engine_settings.memory_limit, pge_set_engine_settings.python_path);
    v_changed := found;
    perform @schema@.pge_pin_settings();
    return v_changed;
end;
$$;

-- A JavaScript language (plv8, pljs) must have its execution timeout, the
-- time limit pge_pin_settings pins: a build without it has no limit but the
-- caller's statement_timeout (none by default), so a projection could run
-- past every limit. Deploy calls this once the language is loaded (its
-- settings exist then); SQLSTATE JP505 (UnlimitedLanguageError) otherwise.
create or replace function pge_require_execution_timeout(language text) returns void
language plpgsql
as $$
begin
    if current_setting(language || '.execution_timeout', true) is null then
        raise exception using errcode = 'JP505',
            message = format('%s here has no %s.execution_timeout: it was built without its execution timeout, so a '
                             'projection could run past jsproj''s time limit; install a build with it (make '
                             'pg-languages builds one; docs/deploy.md says where to find one) or deploy with '
                             'another engine', language, language);
    end if;
end;
$$;
