-- What the JavaScript procedural languages (PLV8, PL/JS) share as hosts of
-- jsproj's engine: the same bundle and the same SQL shape as plpython3u
-- (pge_engine_call(op, payload) -> JSON text). Deploy fills in the language
-- (plv8 or pljs, also the name of its global object) and a secret token of
-- this deployment (see below); sql/engines/plv8.sql and pljs.sql add only
-- `create extension`.
--
-- The isolation model (docs/sandbox.md): both languages keep one JavaScript
-- context per role and backend, whose global object holds the language's
-- object (`plv8.execute` runs any SQL as that role). The first jsproj call
-- in a context captures what the host needs, deletes that global, and locks
-- the context down (js/lib/lockdown.js) before any projection file loads: no
-- projection code, in this schema or another, ever sees a context in which
-- it could reach SQL. The engines of every schema then live in one frozen
-- function, __jsprojEngines(token, schema, op, payload), which runs a
-- schema's engine only for the token written in that schema's own
-- pge_engine_call (PL/pgSQL: checked against pg_proc before it runs any other
-- SQL, and no SQL is made of its arguments). Projection code can see that
-- function but can read neither token, so it can never call an engine itself
-- (PL/JS even makes pge_engine_run a global function): not its own from a
-- handler, not another schema's.

create or replace function @schema@.pge_engine_run(token text, op text, payload text) returns text
language @language@
as $jsproj_engine$
// Runs the engine operation `op` ('route', 'apply', 'describe', 'current') on JSON text.
var call = globalThis.__jsprojEngines;
if (call === undefined) {
  call = (function (language, realEval) {
    'use strict';
    // PL/JS declares each function it compiles as a global of its name; this
    // one stays writable (it is redeclared when redeployed) and is put back
    // after every call, so that nothing written there outlives a call.
    var ENTRY = 'pge_engine_run', HOLDER = '__jsprojEngines', LANGUAGES = 'plv8,pljs'.split(',');
    var SCHEMA = /^"[A-Za-z_][A-Za-z0-9_]{0,62}"$/, TOKEN = /^[0-9a-f]{32}$/;
    var entry = globalThis[ENTRY];
    var execute = language.execute, collect = language.gc;
    var engines = Object.create(null);
    var realm = null;   // the context's realm (js/lib/realm.js), made by the first store's engine
    var locking = null; // the engine locking the context down, kept if a stop left that unfinished
    var refused = leftovers();

    // What JavaScript that ran in this context before jsproj left where
    // projection code would find it: a global or a property of any built-in
    // (prototypes included) holding the language's object or one of its
    // functions, a function written in JavaScript, or a bound function. Such
    // a context is refused (a fresh one holds only the engine's natives).
    function leftovers() {
      var own = new Set([language]);
      Object.getOwnPropertyNames(language).forEach(function (key) {
        var d = Object.getOwnPropertyDescriptor(language, key);
        if (d && 'value' in d && d.value !== null && (typeof d.value === 'object' || typeof d.value === 'function')) own.add(d.value);
      });
      var found = [], seen = new Set(), queue = [[globalThis, 'globalThis']];
      var nativeText = /\{\s*\[native code\]\s*\}\s*$/;
      function suspect(value) {
        if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return false;
        if (own.has(value)) return true;
        if (typeof value !== 'function') return false;
        var text = Function.prototype.toString.call(value);
        return !nativeText.test(text) || /^bound /.test(value.name);
      }
      while (queue.length && found.length < 10) {
        var item = queue.shift(), object = item[0], path = item[1];
        if (seen.has(object)) continue;
        seen.add(object);
        Reflect.ownKeys(object).forEach(function (key) {
          var name = typeof key === 'symbol' ? '[' + String(key) + ']' : key;
          if (object === globalThis && (LANGUAGES.indexOf(key) >= 0 || key === ENTRY || key === HOLDER)) return;
          var d = Object.getOwnPropertyDescriptor(object, key);
          [d.value, d.get, d.set].forEach(function (value) {
            if (suspect(value)) found.push(path + '.' + name);
            else if (value !== null && (typeof value === 'object' || typeof value === 'function')) queue.push([value, path + '.' + name]);
          });
        });
        var proto = Object.getPrototypeOf(object);
        if (proto !== null) queue.push([proto, path + '.__proto__']);
      }
      if (found.length === 0) return null;
      return JSON.stringify({ error: { kind: 'SandboxError', message:
        'this role\'s JavaScript context in this backend holds what other JavaScript left there (' + found.join(', ') +
        '): projection code could reach it; run jsproj\'s engine as a role of its own (docs/deploy.md)' } });
    }

    function query(sql, args) { return execute.call(language, sql, args || []); }

    function failure(kind, message, extra) {
      var error = { kind: kind, message: message };
      Object.keys(extra || {}).forEach(function (key) { error[key] = extra[key]; });
      return JSON.stringify({ error: error });
    }

    // Whether `token` is the one written in `schema`'s own pge_engine_call.
    // Nothing else runs SQL for a caller before this says yes: the schema
    // must be a quoted identifier (it becomes part of SQL text) and the
    // token the exact one, so that the function, which projection code can
    // see on the global object, is inert without it.
    function verified(token, schema) {
      if (typeof schema !== 'string' || !SCHEMA.test(schema) || typeof token !== 'string' || !TOKEN.test(token)) return false;
      var sql = 'select prosrc from pg_proc where oid = to_regprocedure($1::text)';
      var own = query(sql, [schema + '.pge_engine_call(text, text)']);   // no row is a refusal
      var written = own.length === 0 ? null : /pge_engine_run\('([0-9a-f]{32})'/.exec(own[0].prosrc);
      return written !== null && written[1] === token;
    }

    // The schema's engine: the bundle evaluated (the first one makes the
    // context's realm and locks the context down; the others share them),
    // its projection files loaded. A load that a time limit or cancel
    // stopped cannot be caught here: pge_engine_call says so (interrupted).
    // `again`: a load in the time an earlier attempt of the call left.
    function load(state, schema, generation, again) {
      state.generation = generation;
      state.loading = true;
      state.again = again;
      state.failed = null;
      if (state.host) state.host.dispose();   // a redeploy: what the old engine's projections held goes
      var bundle = query('select bundle from ' + schema + '.pge_engine')[0].bundle;
      var host = null;
      if (realm === null) {
        // A lockdown a cancel or statement_timeout stopped is taken up again where it stopped, by the
        // engine that began it: its realm holds the real compilers the lockdown took away (lockdown.js).
        // (It may have been stopped after its last step, on its way back: then it is done.)
        if (locking === null) host = locking = realEval(bundle)(null);
        if (!locking.realm.lockedDown) {
          var locked = JSON.parse(locking.lockdown(JSON.stringify({ ops: [], writable: [ENTRY], keep: [HOLDER] })));
          if (locked.error) return JSON.stringify(locked);
        }
        realm = locking.realm;
        locking = null;
      }
      if (host === null) host = realEval(bundle)(realm);   // (this store's own bundle, in the context's realm)
      state.host = host;
      var rows = query('select file, source from ' + schema + '.pge_deployed_files()');
      var loaded = JSON.parse(host.load(JSON.stringify(rows.map(function (r) { return { file: r.file, source: r.source }; }))));
      state.loading = false;
      if (loaded.error) state.failed = JSON.stringify(loaded);
      else state.described = loaded.ok;
      return null;
    }

    // A load that never returned. When the engine's own time limit stopped a
    // load that had the whole of it, later calls answer with that at once
    // (loading is deterministic: the same generation would be stopped
    // again). A cancel, a statement_timeout, or a limit reached in a load
    // after a retry says nothing of the next load: that one loads afresh.
    function interrupted(state, timedOut) {
      state.loading = false;
      if (!timedOut || state.again) {
        state.generation = null;
        return;
      }
      var where = state.host ? JSON.parse(state.host.current('')).ok : {};
      var culprit = where.file ? 'projection file ' + where.file : 'the engine';
      var limit = String(Number(query('select timeout from ' + state.schema + '.pge_engine')[0].timeout));
      state.failed = failure('SandboxTimeoutError', culprit + ' ran past the time limit of ' + limit + ' s',
        { file: where.file || null, projection: null });
    }

    // A call that a limit or cancel stopped never ran its `finally`: the context's realm still says a
    // call runs (js/lib/host.js refuses every entry while one does, so that projection code cannot call
    // an engine). What ends such a call is PostgreSQL's: the stop's error ended the (sub)transaction in
    // which the call ran, and with it the mark the call set there (a local setting, unique to this
    // context and call). An entry that finds the realm busy and its mark gone ends that call; one made
    // while the call runs (by projection code: it can run no SQL) finds the mark and is refused.
    var MARK = 'jsproj.engine_call', context = Math.random().toString(36).slice(2), calls = 0, mark = null;

    function endStopped() {
      var shared = realm !== null ? realm : locking !== null ? locking.realm : null;
      if (shared === null || !shared.busy) return;
      if (query('select current_setting($1, true) as mark', [MARK])[0].mark !== mark) shared.busy = false;
    }

    function run(token, schema, op, payload) {
      if (refused) return refused;
      endStopped();
      if (ENTRY in globalThis && globalThis[ENTRY] !== entry) globalThis[ENTRY] = entry;
      try {
        return answer(token, schema, op, payload);
      } finally {
        if (ENTRY in globalThis && globalThis[ENTRY] !== entry) globalThis[ENTRY] = entry;
      }
    }

    function answer(token, schema, op, payload) {
      var state = engines[schema];
      if (!state || state.token !== token) {
        if (!verified(token, schema)) return failure('SandboxError', 'pge_engine_run: refused (not called by its pge_engine_call)');
        state = { token: token, schema: schema, generation: null };  // a new deployment of the schema: load it afresh
        engines[schema] = state;
      }
      // What was running when the language stopped the last call (pge_engine_call asks, saying
      // whether its time limit did; run has ended that call), and settle a load it stopped.
      if (op === 'current') {
        var running = state.host ? state.host.current('') : '{"ok": {}}';
        if (state.loading) interrupted(state, payload === 'time limit');
        return running;
      }
      mark = context + ':' + (++calls);   // this call's, set in its (sub)transaction before any entry runs
      var generation = String(query('select generation, set_config($1, $2, true) from ' + schema + '.pge_engine',
        [MARK, mark])[0].generation);
      if (state.loading) interrupted(state, false);   // stopped, and not asked about: load afresh
      if (state.generation !== generation) {
        var problem = load(state, schema, generation, false);
        if (problem) return problem;
      }
      if (state.failed) return state.failed;
      if (op === 'describe') return JSON.stringify({ ok: state.described });
      if (op !== 'route' && op !== 'apply') return failure('SandboxError', 'pge_engine_run: unknown operation ' + op);
      var result = state.host[op](payload);
      if (result.slice(0, 9) === '{"error":' && JSON.parse(result).error.kind === 'SandboxMemoryError') {
        // The heap this call ran out of may hold what earlier calls left (a projection that keeps
        // growing a file-level variable): once more with the store's engine loaded afresh (what the
        // old one held is freed), before the error is this call's own.
        state.generation = null;
        state.host.dispose();   // what its projections hold goes (the context's built-ins may keep its code)
        state.host = null;
        if (typeof collect === 'function') collect.call(language);   // PL/JS: free it now (reference cycles)
        problem = load(state, schema, generation, true);
        if (problem) return problem;
        if (state.failed) return state.failed;
        result = state.host[op](payload);
      }
      return result;
    }
    // A method: no `prototype` object, nothing writable to share (the lockdown freezes it).
    return { __jsprojEngines(token, schema, op, payload) { return run(token, schema, op, payload); } }.__jsprojEngines;
  })(@language@, (0, eval));
  Object.defineProperty(globalThis, '__jsprojEngines', { value: Object.freeze(call) });
  delete globalThis.@language@;
}
return call(token, @schema_js@, op, payload);
$jsproj_engine$;

-- The engine call every engine offers (sql/functions/inline.sql calls it). The engine
-- answers its own errors as JSON; what reaches this handler is the language
-- stopping projection code: statement_timeout or a cancel (the languages'
-- only time limit: a loop cannot be interrupted from inside; both raise
-- XX000 for it), or its memory limit. The error then names the projection
-- or file that was running; an interruption gets the cancel's SQLSTATE, so
-- that clients see a cancelled statement.
create or replace function @schema@.pge_engine_call(op text, payload text) returns text
language plpgsql
as $$
declare
    v_state text;
    v_message text;
    v_detail text;
    v_where jsonb;
    v_what text;
    v_kind text;
    v_names text[] := '{}';
begin
    begin
        begin
            return @schema@.pge_engine_run('@token@', op, payload);
        exception when others or query_canceled then
            get stacked diagnostics v_state = returned_sqlstate, v_message = message_text,
                                    v_detail = pg_exception_detail;
        end;
    exception when query_canceled then
        -- PLV8 passes the signal on: PostgreSQL still holds the cancel and
        -- raises it before the handler's first statement; caught here, it is spent.
        v_state := '57014';
    end;
    if v_message ~ 'Out of memory error' then
        -- PLV8's isolate died. The heap it ran out of may have held what earlier calls left (a
        -- projection that keeps growing a file-level variable): once more, in a new isolate, before
        -- the error is this call's own.
        begin
            return @schema@.pge_engine_run('@token@', op, payload);
        exception when others or query_canceled then
            v_where := '{}';
        end;
    else
        begin  -- what was running (and whether the time limit stopped it: a load it stopped is not run again)
            v_where := (@schema@.pge_engine_run('@token@', 'current',
                case when concat(v_message, ' ', v_detail) ~* 'execution timeout' then 'time limit' else '' end
            )::jsonb) -> 'ok';
        exception when others or query_canceled then
            v_where := '{}';
        end;
    end if;
    if v_where ->> 'projection' is null and v_where ->> 'upcaster' is null and v_where ->> 'file' is null
       and op in ('route', 'apply') then
        -- The language lost what was running with its context (PLV8 after
        -- running out of memory): name the projections of the call.
        begin
            v_names := array(select jsonb_array_elements_text(payload::jsonb -> 'options' -> 'projections'));
        exception when others then
            v_names := '{}';
        end;
    end if;
    v_what := coalesce('projection ' || (v_where ->> 'projection'), 'upcaster ' || (v_where ->> 'upcaster'),
                       'projection file ' || (v_where ->> 'file'),
                       case cardinality(v_names) when 0 then null when 1 then 'projection ' || v_names[1]
                            else 'one of projections ' || array_to_string(v_names, ', ') end,
                       'projection code');
    if concat(v_message, ' ', v_detail) ~* 'execution timeout' then
        -- the language's execution timeout: jsproj's time limit, pinned on pge_engine_run (sql/functions/security.sql)
        v_kind := 'SandboxTimeoutError';
        v_state := 'JP500';
        v_message := format('%s ran past the time limit of %s s', v_what, (select timeout from @schema@.pge_engine));
    elsif v_state = '57014' or concat(v_message, ' ', v_detail) ~* 'interrupted' then
        v_kind := 'SandboxTimeoutError';
        v_state := '57014';
        v_message := format('%s was stopped by statement_timeout or a cancel', v_what);
    elsif concat(v_message, ' ', v_detail) ~* 'memory' then
        v_kind := 'SandboxMemoryError';
        v_message := format('%s went past the memory limit (%s)', v_what, v_message);
    else
        v_kind := 'SandboxError';
        v_message := format('%s failed in the engine: %s', v_what, concat_ws(': ', v_message, v_detail));
    end if;
    raise exception using errcode = v_state, message = v_message,
        detail = (jsonb_build_object('kind', v_kind, 'message', v_message) || coalesce(v_where, '{}'))::text;
end;
$$;

-- The engine runs only for its owner (and, as the owner, the entries that run
-- as it: pge_append): the token in pge_engine_call's text, which any role can
-- read in pg_proc, is then of no use to another role either.
revoke execute on function @schema@.pge_engine_run(text, text, text) from public;
revoke execute on function @schema@.pge_engine_call(text, text) from public;

-- A projection must not outlast jsproj's time limit: the language must have
-- its execution timeout (sql/functions/security.sql). Its settings exist
-- now: creating pge_engine_run loaded it.
select @schema@.pge_require_execution_timeout('@language@');
