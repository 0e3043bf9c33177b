-- The plpython3u host of jsproj's engine: V8 (mini-racer) in a worker
-- process of the backend. Everything else an in-database engine runs is
-- shared SQL (sql/functions).
create extension if not exists plpython3u;

create or replace function @schema@.pge_engine_call(op text, payload text) returns text
language plpython3u
as $$
# Runs the engine operation `op` ('route', 'apply', or 'describe') on JSON
# text, in a worker process this backend starts for the schema (kept in GD,
# started again when the deployment generation moves): V8 aborts its
# process on some allocations (a huge fill, split of a huge string), and in
# the backend that would make PostgreSQL restart every connection; in the
# worker it costs the worker. The worker evaluates the deployed bundle,
# locks it down and loads the projection files under the same limits as
# handlers (docs/sandbox.md). Its settings are the store owner's, written by
# deploy in pge_engine (python_path: where py_mini_racer is; timeout: seconds
# per call; memory_limit: MB of V8 heap), never a setting a session can
# change: the caller may be an application role appending through
# pge_append, and this runs as the owner (a superuser: plpython3u is
# untrusted). A call V8 cannot interrupt in time is ended by killing the
# worker; while the backend waits it lets PostgreSQL act on a cancel.
import json, os, select, struct, subprocess, sys, textwrap, time

if op not in ('route', 'apply', 'describe'):
    plpy.error('pge_engine_call: unknown operation %s' % op)

GRACE = 2.0  # seconds past the time limit before a worker that V8 could not stop is killed
STARTUP = 30.0  # seconds a worker has to start (Python, mini-racer, V8, the bundle, lockdown), as in the Python host
READY = '{"ok": "ready"}'  # what a worker says once started, before it loads the files
SLICE = 0.2  # seconds between PostgreSQL's looks at a cancel while a call runs

WORKER = r'''
import json, os, signal, struct, sys
# PostgreSQL sends SIGINT to the backend's process group for a cancel or statement_timeout: the backend acts
# on it and stops the worker itself; the worker dying of it mid-answer would read as V8 failing.
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.path[:0] = [p for p in sys.argv[1].split(':') if p]
requests, answers = sys.stdin.buffer, os.fdopen(os.dup(1), 'wb')
os.dup2(2, 1)  # anything printed goes to the server's log, never into the answers

def read():
    head = requests.read(4)
    if len(head) < 4:
        os._exit(0)  # the backend went away (no V8 teardown: it can hang)
    return requests.read(struct.unpack('>I', head)[0]).decode('utf-8', 'surrogatepass')

def write(text):
    data = text.encode('utf-8', 'surrogatepass')
    answers.write(struct.pack('>I', len(data)) + data)
    answers.flush()

def failure(kind, message, **fields):
    return json.dumps({'error': dict(kind=kind, message=message, **fields)})

start = json.loads(read())
timeout = start['timeout']
try:
    from py_mini_racer import MiniRacer, init_mini_racer
except ImportError as exc:
    write(failure('SandboxError', "the database server's Python cannot import py_mini_racer: install mini-racer "
                  'for it, or deploy with --python-path naming a folder holding it (%s)' % exc))
    sys.exit(0)
# The Python host's V8 flags (jsproj.runtime.worker.V8_FLAGS, written here by deploy): among them the newer
# regular-expression syntax only V8 14 has, off as in every other host (docs/javascript.md).
init_mini_racer(flags=@v8_flags@, ignore_duplicate_init=True)
racer = MiniRacer()
racer.set_hard_memory_limit(start['memory'] * 1024 * 1024)
host = racer.eval('(%s)(null)' % start['bundle'])
ops = {name: host[name] for name in ('route', 'apply', 'load', 'current')}
# The frozen global entry __jsprojCall runs route and apply for a small payload (one V8 task where a function
# handle's call takes three, as in the Python host); no file's scope names it, and it refuses a call made while
# one of its calls runs (js/lib/host.js).
locked = json.loads(host['lockdown'](json.dumps({'ops': ['apply', 'route']})))
if 'error' in locked:
    write(json.dumps(locked))
    os._exit(0)
write('{"ok": "ready"}')  # started: the time limit counts from the load of the files on

def stopped(exc):
    # The answer for a call that raised (a limit, naming what ran, or a failure); the worker ends after it.
    name = type(exc).__name__
    out_of_memory = name == 'JSOOMException' or racer.was_hard_memory_limit_reached()
    where = {}
    try:
        if out_of_memory:
            racer.low_memory_notification()
        where = {k: v for k, v in json.loads(ops['current']('', timeout_sec=1.0)).get('ok', {}).items() if v is not None}
    except Exception:
        pass
    culprit = 'projection %s' % where['projection'] if 'projection' in where else \
        'upcaster %s' % where['upcaster'] if 'upcaster' in where else \
        'projection file %s' % where['file'] if 'file' in where else 'projection code'
    if out_of_memory:
        return failure('SandboxMemoryError', '%s went past the memory limit' % culprit, **where)
    if name == 'JSTimeoutException':
        return failure('SandboxTimeoutError', '%s ran past the time limit of %g s' % (culprit, timeout), **where)
    return failure('SandboxError', 'the engine failed: %s: %s' % (name, exc), **where)

SMALL = 65536

def answer(op, text):
    try:
        if op != 'load' and len(text) <= SMALL:
            return racer.eval('__jsprojCall(%s, %s)' % (json.dumps(op), json.dumps(text)), timeout_sec=timeout), False
        return ops[op](text, timeout_sec=timeout), False
    except Exception as exc:
        return stopped(exc), True

try:
    done, last = answer('load', start['sources'])
    write(done)
    while not last:
        request = read()
        op, _, text = request.partition('\n')
        done, last = answer(op, text) if op in ('route', 'apply') else (failure('SandboxError', 'unknown operation'), True)
        write(done)
finally:  # (an answer the backend is no longer there to read, too)
    os._exit(0)  # skip V8's teardown: an isolate stopped mid-call may not free cleanly, and can hang
'''

def failure(kind, message, **fields):
    return json.dumps({'error': dict(kind=kind, message=message, **fields)})

def named(request):
    # The projections of a call, for an error when the worker cannot say what ran.
    try:
        names = json.loads(request).get('options', {}).get('projections') or []
    except Exception:
        names = []
    return 'projection %s' % names[0] if len(names) == 1 else \
        'one of projections %s' % ', '.join(names) if names else 'projection code'

class Worker:
    def __init__(self, settings, bundle, sources):
        self.timeout, self.unstarted = float(settings['timeout']), False
        python = os.path.join(sys.base_exec_prefix, 'bin', 'python%d.%d' % sys.version_info[:2])
        # (PL/Python indents a function's body, the text of WORKER with it.) In the backend's process group: the
        # postmaster's SIGTERM, SIGQUIT and SIGKILL for the backend end it too.
        self.proc = subprocess.Popen([python, '-I', '-c', textwrap.dedent(WORKER), settings['python_path']],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        start = {'timeout': self.timeout, 'memory': int(settings['memory_limit']), 'bundle': bundle, 'sources': sources}
        self.send(json.dumps(start))

    def send(self, text):
        data = text.encode('utf-8', 'surrogatepass')
        try:
            self.proc.stdin.write(struct.pack('>I', len(data)) + data)
            self.proc.stdin.flush()
        except OSError:
            pass  # it died: receive says so

    def receive(self, culprit, starting=False):  # culprit(): what ran, named only for an error
        # The answer, waited for up to the time limit and the grace (starting: STARTUP), PostgreSQL acting on a
        # cancel meanwhile.
        deadline = time.monotonic() + (STARTUP if starting else self.timeout + GRACE)
        out, data, need = self.proc.stdout.fileno(), b'', 4
        while len(data) < need:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                if starting:
                    self.unstarted = True
                    return failure('SandboxError', 'the V8 worker did not start in %g s (it was stopped)' % STARTUP)
                return failure('SandboxTimeoutError', '%s ran past the time limit of %g s (its worker was stopped)'
                               % (culprit(), self.timeout))
            if select.select([out], [], [], min(SLICE, left))[0]:
                chunk = os.read(out, need - len(data))  # never past this answer: READY and the load's come back to back
                if not chunk:
                    self.stop()
                    return failure('SandboxMemoryError', '%s stopped the V8 worker (V8 ran out of memory or failed: '
                                   'the server log says which)' % culprit())
                data += chunk
                if need == 4 and len(data) >= 4:
                    need = 4 + struct.unpack('>I', data[:4])[0]
            else:
                try:
                    plpy.execute('select')  # a cancel or statement_timeout is acted on here
                except BaseException:
                    self.stop()
                    raise
        return data[4:need].decode('utf-8', 'surrogatepass')

    def load(self):
        # The projection files loaded, or the error that stopped them. The worker's start is not projection code
        # and may be slow on a busy server: it has STARTUP, and the time limit counts from the load on.
        started = self.receive(lambda: 'the projection files', starting=True)
        return self.receive(lambda: 'the projection files') if started == READY else started

    def call(self, op, request):
        self.send(op + '\n' + request)
        return self.receive(lambda: named(request))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

key = 'jsproj:' + '@schema@'
if 'generation' not in SD:  # planned once per backend (each call asks: a deploy moves it)
    SD['generation'] = plpy.prepare('select generation from @schema@.pge_engine')
now = plpy.execute(SD['generation'])[0]
state = GD.get(key)
# A fresh worker for a new deployment, or when the last one was stopped (unless its load failed: loading is
# deterministic, so the same deployment fails the same way, and later calls answer with that at once).
if state is None or state['generation'] != now['generation'] or \
        (state['worker'].proc.poll() is not None and '"error"' not in state['loaded'][:10]):
    if state is not None:
        state['worker'].stop()
    # (read at each start: a change of them moves the generation; the defaults serve a schema not migrated yet)
    given = json.loads(plpy.execute('''select (to_jsonb(e) - 'bundle')::text as s from @schema@.pge_engine e''')[0]['s'])
    settings = {'timeout': 10, 'memory_limit': 256, 'python_path': '/usr/local/lib/jsproj/site'}
    settings.update((k, given[k]) for k in settings if given.get(k) is not None)
    rows = plpy.execute('select file, source from @schema@.pge_deployed_files()')
    sources = json.dumps([{'file': r['file'], 'source': r['source']} for r in rows])
    bundle = plpy.execute('select bundle from @schema@.pge_engine')[0]['bundle']
    worker = Worker(settings, bundle, sources)
    loaded = worker.load()
    if worker.unstarted:  # (not deterministic, as a load is: the next call starts another worker)
        GD.pop(key, None)
        return loaded
    state = {'generation': now['generation'], 'worker': worker, 'loaded': loaded, 'settings': settings,
             'bundle': bundle, 'sources': sources}
    GD[key] = state

if '"error"' in state['loaded'][:10]:
    # Loading is deterministic (no clock, no randomness at load time): later calls answer at once.
    return state['loaded']
if op == 'describe':
    return state['loaded']
answer = state['worker'].call(op, payload)
if answer.startswith('{"error"') and '"SandboxMemoryError"' in answer[:200]:
    # The heap this call ran out of may hold what earlier calls left (a projection that keeps growing a
    # file-level variable): once more in a fresh worker, the projections reloaded, before the error is its own.
    state['worker'].stop()
    state['worker'] = Worker(state['settings'], state['bundle'], state['sources'])
    state['loaded'] = state['worker'].load()
    if '"error"' not in state['loaded'][:10]:
        answer = state['worker'].call(op, payload)
if state['worker'].proc.poll() is not None or '"SandboxTimeoutError"' in answer or '"SandboxMemoryError"' in answer:
    GD.pop(key, None)  # a fresh worker next time: nothing half-done survives
    state['worker'].stop()
    stopped = json.loads(answer)
    if 'error' in stopped and not stopped['error'].get('projection') and 'projection code' in stopped['error']['message']:
        # V8 could not say what ran (its isolate was out of memory): name the call's projections
        stopped['error']['message'] = stopped['error']['message'].replace('projection code', named(payload), 1)
        answer = json.dumps(stopped)
return answer
$$;

-- The engine runs only for its owner (and, as the owner, the entries that run
-- as it: pge_append). No other role has a use for calling it.
revoke execute on function @schema@.pge_engine_call(text, text) from public;
