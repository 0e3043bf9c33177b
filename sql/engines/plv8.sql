-- The PLV8 host of jsproj's engine: PLV8's V8, in the backend.
-- Everything else an in-database engine runs is shared SQL (migration 0002).
-- Not yet run here (no PLV8 on these machines until issue 13 builds it), and
-- not yet locked down: the engine's lockdown freezes the global object, which
-- this function's way of hiding `plv8` during calls cannot live with; issue 13
-- replaces both. Projection files already get `plv8` as undefined by name.
create extension if not exists plv8;

create or replace function @schema@.pge_engine_call(op text, payload text) returns text
language plv8
as $$
// Runs the engine operation `op` ('route', 'apply', or 'describe') on JSON
// text. The engine is evaluated lazily in this session, with the deployed
// bundle and projection sources, and reloaded when the deployment generation
// moves. Limits come from PLV8 (plv8.execution_timeout, plv8.memory_limit).
if (op !== 'route' && op !== 'apply' && op !== 'describe') {
  plv8.elog(ERROR, 'pge_engine_call: unknown operation ' + op);
}
var G = (0, eval)('this');
var KEY = 'jsproj:' + '@schema@';
var hosts = G.__jsprojHosts;
if (!hosts) {
  hosts = {};
  Object.defineProperty(G, '__jsprojHosts', { value: hosts, configurable: true });
}
var engine = plv8.execute('select bundle, generation from @schema@.pge_engine')[0];
var state = hosts[KEY];
if (!state || String(state.generation) !== String(engine.generation)) {
  var host = (0, eval)(engine.bundle);
  var rows = plv8.execute('select distinct on (file) file, source from @schema@.pge_projection_definitions order by file');
  var loaded = JSON.parse(host.load(JSON.stringify(rows.map(function (r) { return { file: r.file, source: r.source }; }))));
  if (loaded.error) return JSON.stringify(loaded);
  state = { host: host, generation: engine.generation, described: loaded.ok };
  hosts[KEY] = state;
}
if (op === 'describe') return JSON.stringify({ ok: state.described });
// Projection code must not reach plv8 (SQL) or these hosts while it runs.
var plv8Object = G.plv8;
delete G.plv8;
delete G.__jsprojHosts;
try {
  return state.host[op](payload);
} finally {
  G.plv8 = plv8Object;
  Object.defineProperty(G, '__jsprojHosts', { value: hosts, configurable: true });
}
$$;
