-- The plpython3u host of jsproj's engine: V8 (mini-racer) inside the backend.
-- Everything else an in-database engine runs is shared SQL (migration 0002).
create extension if not exists plpython3u;

create or replace function @schema@.pge_engine_call(op text, payload text) returns text
language plpython3u
as $$
# Runs the engine operation `op` ('route', 'apply', or 'describe') on JSON
# text. The V8 isolate is created lazily in this backend, with the deployed
# engine bundle and projection sources, and reloaded when the deployment
# generation moves. Settings: jsproj.python_path (where py_mini_racer is),
# jsproj.timeout (seconds per call, default 10), jsproj.memory_limit (MB, 256).
import json

if op not in ('route', 'apply', 'describe'):
    plpy.error('pge_engine_call: unknown operation %s' % op)

SMALL = 65536  # payloads up to this size go as a string literal: one V8 task instead of three

def setting(name, default):
    value = plpy.execute("select current_setting('%s', true) as v" % name)[0]['v']
    return value if value else default

def failure(kind, message, **fields):
    return json.dumps({'error': dict(kind=kind, message=message, **fields)})

key = 'jsproj:' + '@schema@'
now = plpy.execute('''select generation, current_setting('jsproj.timeout', true) as timeout from @schema@.pge_engine''')[0]
state = GD.get(key)
if state is None or state['generation'] != now['generation']:
    import sys
    for path in reversed(setting('jsproj.python_path', '/usr/local/lib/jsproj/site').split(':')):
        if path and path not in sys.path:
            sys.path.insert(0, path)
    try:
        from py_mini_racer import MiniRacer
    except ImportError as exc:
        return failure('SandboxError', 'the database server\'s Python cannot import py_mini_racer: install mini-racer '
                       'for it, or set jsproj.python_path to a folder holding it (%s)' % exc)
    racer = MiniRacer()
    racer.set_hard_memory_limit(int(setting('jsproj.memory_limit', '256')) * 1024 * 1024)
    host = racer.eval(plpy.execute('select bundle from @schema@.pge_engine')[0]['bundle'])
    rows = plpy.execute('select distinct on (file) file, source from @schema@.pge_projection_definitions order by file')
    loaded = json.loads(host['load'](json.dumps([{'file': r['file'], 'source': r['source']} for r in rows])))
    if 'error' in loaded:
        return json.dumps(loaded)
    # A frozen global that runs route/apply/current only: eval can then call the engine
    # in one V8 task (no load: projection code cannot replace the deployed projections).
    racer.eval("(function (host) { Object.defineProperty(globalThis, '__jsprojCall', { value: Object.freeze("
               "function (op, text) { if (op !== 'route' && op !== 'apply' && op !== 'current') "
               "throw new Error('unknown operation'); return host[op](text); }) }); })")(host)
    racer.eval('Object.freeze(globalThis)')  # projections cannot leave anything global for one another
    state = {'racer': racer, 'generation': now['generation'], 'described': loaded['ok'],
             'ops': {name: host[name] for name in ('route', 'apply', 'current')}}
    GD[key] = state

if op == 'describe':
    return json.dumps({'ok': state['described']})
timeout = float(now['timeout'] or '10')
try:
    if len(payload) <= SMALL:
        return state['racer'].eval('__jsprojCall(%s, %s)' % (json.dumps(op), json.dumps(payload)), timeout_sec=timeout)
    return state['ops'][op](payload, timeout_sec=timeout)
except Exception as exc:
    name = type(exc).__name__
    racer = state['racer']
    out_of_memory = name == 'JSOOMException' or racer.was_hard_memory_limit_reached()
    where = {}
    try:
        if out_of_memory:
            racer.low_memory_notification()
        where = {k: v for k, v in json.loads(state['ops']['current']('', timeout_sec=1.0)).get('ok', {}).items() if v is not None}
    except Exception:
        pass
    if out_of_memory:
        # A fresh isolate next time; the old one is kept, not freed mid-call.
        GD.setdefault('jsproj:retired', []).append(GD.pop(key))
        return failure('SandboxMemoryError', 'projection %s went past the memory limit' % where.get('projection', 'code'), **where)
    if name == 'JSTimeoutException':
        return failure('SandboxTimeoutError', 'projection %s ran past the time limit of %g s'
                       % (where.get('projection', 'code'), timeout), **where)
    return failure('SandboxError', 'the engine failed: %s: %s' % (name, exc), **where)
$$;
