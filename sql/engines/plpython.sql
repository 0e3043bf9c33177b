-- The plpython3u host of jsproj's engine: V8 (mini-racer) inside the backend.
-- Everything else an in-database engine runs is shared SQL (sql/functions).
create extension if not exists plpython3u;

create or replace function @schema@.pge_engine_call(op text, payload text) returns text
language plpython3u
as $$
# Runs the engine operation `op` ('route', 'apply', or 'describe') on JSON
# text. The V8 isolate is created lazily in this backend, with the deployed
# engine bundle and projection sources, and reloaded when the deployment
# generation moves. Its settings are the store owner's, written by deploy in
# pge_engine (python_path: where py_mini_racer is; timeout: seconds per call;
# memory_limit: MB of V8 heap), never a setting a session can change: the
# caller may be an application role appending through pge_append, and this
# runs as the owner (a superuser: plpython3u is untrusted).
# Loading the projection files runs under the same limits as handlers, in
# the same locked-down V8 (frozen built-ins and global, no timers, promises,
# eval or real clock): a file cannot tell it is in the database, and one
# that loops while it loads is stopped by the time limit, not by kill -9.
import json

if op not in ('route', 'apply', 'describe'):
    plpy.error('pge_engine_call: unknown operation %s' % op)

SMALL = 65536  # payloads up to this size go as a string literal: one V8 task instead of three

def failure(kind, message, **fields):
    return json.dumps({'error': dict(kind=kind, message=message, **fields)})

def stopped(racer, current, exc, timeout):
    # The answer for a call that raised: a limit (naming what ran), or a failure.
    name = type(exc).__name__
    out_of_memory = name == 'JSOOMException' or racer.was_hard_memory_limit_reached()
    where = {}
    try:
        if out_of_memory:
            racer.low_memory_notification()
        where = {k: v for k, v in json.loads(current('', timeout_sec=1.0)).get('ok', {}).items() if v is not None}
    except Exception:
        pass
    culprit = 'projection %s' % where['projection'] if 'projection' in where else \
        'projection file %s' % where['file'] if 'file' in where else 'projection code'
    if out_of_memory:
        return True, failure('SandboxMemoryError', '%s went past the memory limit' % culprit, **where)
    if name == 'JSTimeoutException':
        return False, failure('SandboxTimeoutError', '%s ran past the time limit of %g s' % (culprit, timeout), **where)
    return False, failure('SandboxError', 'the engine failed: %s: %s' % (name, exc), **where)

def retire(racer):
    # A fresh isolate next time; the old one is kept, not freed mid-call.
    GD.setdefault('jsproj:retired', []).append(racer)

key = 'jsproj:' + '@schema@'
now = plpy.execute('select generation from @schema@.pge_engine')[0]
state = GD.get(key)
if state is None or state['generation'] != now['generation']:
    import sys
    # (read at each load: a change of them moves the generation; the defaults serve a schema not migrated yet)
    given = json.loads(plpy.execute('''select (to_jsonb(e) - 'bundle')::text as s from @schema@.pge_engine e''')[0]['s'])
    settings = {'timeout': 10, 'memory_limit': 256, 'python_path': '/usr/local/lib/jsproj/site'}
    settings.update((k, given[k]) for k in settings if given.get(k) is not None)
    timeout = float(settings['timeout'])
    for path in reversed(settings['python_path'].split(':')):
        if path and path not in sys.path:
            sys.path.insert(0, path)
    try:
        # mini-racer's V8 must call its own functions, not those of another V8 this backend loaded before it
        # (PLV8's libnode, whose symbols PostgreSQL loads for every library): load it bound to itself first.
        if 'py_mini_racer' not in sys.modules:
            import ctypes, importlib.util, os
            spec = importlib.util.find_spec('py_mini_racer')
            for folder in (spec.submodule_search_locations or []) if spec else []:
                library = os.path.join(folder, 'libmini_racer.so')
                if os.path.exists(library):
                    ctypes.CDLL(library, mode=os.RTLD_LOCAL | os.RTLD_DEEPBIND)
        from py_mini_racer import MiniRacer
    except ImportError as exc:
        return failure('SandboxError', 'the database server\'s Python cannot import py_mini_racer: install mini-racer '
                       'for it, or deploy with --python-path naming a folder holding it (%s)' % exc)
    racer = MiniRacer()
    racer.set_hard_memory_limit(int(settings['memory_limit']) * 1024 * 1024)
    host = racer.eval('(%s)(null)' % plpy.execute('select bundle from @schema@.pge_engine')[0]['bundle'])
    locked = json.loads(host['lockdown'](json.dumps({'ops': ['route', 'apply']})))
    if 'error' in locked:
        return json.dumps(locked)
    rows = plpy.execute('select distinct on (file) file, source from @schema@.pge_projection_definitions order by file')
    sources = json.dumps([{'file': r['file'], 'source': r['source']} for r in rows])
    try:
        loaded = json.loads(host['load'](sources, timeout_sec=timeout))
    except Exception as exc:
        retire(racer)
        # Loading is deterministic (no clock, no randomness at load time): the
        # same generation fails the same way, so later calls answer at once.
        failed = stopped(racer, host['current'], exc, timeout)[1]
        GD[key] = {'generation': now['generation'], 'failed': failed, 'timeout': timeout}
        return failed
    if 'error' in loaded:
        GD[key] = {'generation': now['generation'], 'failed': json.dumps(loaded), 'timeout': timeout}
        return json.dumps(loaded)
    state = {'racer': racer, 'generation': now['generation'], 'described': loaded['ok'], 'timeout': timeout,
             'ops': {name: host[name] for name in ('route', 'apply', 'current')}}
    GD[key] = state

timeout = state['timeout']
if 'failed' in state:
    return state['failed']
if op == 'describe':
    return json.dumps({'ok': state['described']})
try:
    if len(payload) <= SMALL:
        return state['racer'].eval('__jsprojCall(%s, %s)' % (json.dumps(op), json.dumps(payload)), timeout_sec=timeout)
    return state['ops'][op](payload, timeout_sec=timeout)
except Exception as exc:
    fresh, answer = stopped(state['racer'], state['ops']['current'], exc, timeout)
    if fresh:
        retire(GD.pop(key)['racer'])
    return answer
$$;
