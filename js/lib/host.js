'use strict';
// The text interface for hosts that reach the engine across a bridge
// (Python's V8 worker, PLV8, plpython3u): JSON text in, JSON text out, one
// call per batch. Every answer is {"ok": result, "logs": [...]} or
// {"error": {kind, message, ...}, "logs": [...]}.

var projector = null;
// A build in progress: documents folded in memory across pages (foldStart,
// foldLines), handed out at the end as rows for COPY (foldRows).
var fold = null;
// The batch the last route call parsed, and the keys its views' identifiedBy
// gave, so that apply can name it instead of sending and parsing the same
// events again, and uses the same keys.
var NOT_ROUTED = { id: null, events: null, routed: null, cache: [] };
var routed = NOT_ROUTED;
// Documents kept across calls for the projections a call names in options.cache (cache.js).
var cache = new jsproj.DocumentCache();

// Projections defined at a REPL (evaluate), apart from the loaded ones.
var scratch = null;

// A REPL value as text: JSON when it has a JSON form, else what String() says.
function show(value) {
  if (typeof value === 'function') return '[Function' + (value.name ? ': ' + value.name : '') + ']';
  try {
    var text = JSON.stringify(value, null, 2);
    if (text !== undefined) return text;
  } catch (e) { /* cyclic, BigInt: fall through */ }
  return String(value);
}

// A text value as COPY's text format writes it: backslash, tab, newline and
// carriage return escaped (JSON text has none of the last three raw).
function copyField(text) {
  return text.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}

// At most this much text per foldRows answer (characters), whatever the documents' sizes.
var ROWS_TEXT = 4000000;

// The next rows of a build's documents ("id<TAB>json" lines), up to `limit` of them or ROWS_TEXT.
function nextRows(dump, limit) {
  var lines = [], size = 0;
  while (lines.length < limit && size < ROWS_TEXT) {
    var step = dump.entries.next();
    if (step.done) { dump.done = true; break; }
    var line = copyField(step.value[0]) + '\t' + copyField(JSON.stringify(step.value[1]));
    lines.push(line);
    size += line.length;
  }
  return lines;
}

// Apply a batch (routed already, or not: `keys` null), with the documents kept for the
// projections in `cached` (cache.js) and those supplied.
function applyBatch(events, keys, cached, documents, options) {
  if (cached.length) documents = cache.documents(keys.keys, cached, documents);
  var result = jsproj.apply(loaded(), events, documents, options, keys);
  if (cached.length) cache.keep(keys.keys, cached, documents, result);
  result.errors = result.errors.map(jsproj.errorInfo);
  if (options && options.changesText) result.changes = JSON.stringify(result.changes);   // for the host to write as it is
  return result;
}

function loaded() {
  if (!projector) throw jsproj.fail('EngineError', 'no projections are loaded: call load first');
  return projector;
}

function answer(result) {
  var logs = jsproj.drainLogs();
  var envelope = { ok: result };
  if (logs.length) envelope.logs = logs;
  return JSON.stringify(envelope);
}

// The error answer, whatever was thrown: errorInfo is total (errors.js), and
// should writing it fail all the same, a fixed answer names what was running.
function answerError(error) {
  var logs = jsproj.drainLogs();
  try {
    var envelope = { error: jsproj.errorInfo(error) };
    if (logs.length) envelope.logs = logs;
    return JSON.stringify(envelope);
  } catch (e) {
    var running = jsproj.current.projection;
    return JSON.stringify({ error: { kind: 'InternalError', projection: running,
      message: (running ? 'projection ' + running : 'projection code') + ' threw a value that cannot be reported' } });
  }
}

var realm = jsproj.realm;
var REFUSED = JSON.stringify({ error: { kind: 'SandboxError',
  message: 'the engine refuses a call made while one of its calls runs: projection code cannot call an engine' } });

// An operation as hosts call it: text in, text out, never a throw. A call is
// refused while another runs (the only code that runs meanwhile is
// projection code: re-entry would let it route or apply events of its
// choosing, in any store of the context); every call starts with nothing of
// an earlier one (what was running, RegExp's last match).
function entry(fn) {
  return function (text) {
    if (realm.busy) return REFUSED;
    realm.busy = true;
    try {
      jsproj.resetCurrent();
      jsproj.clearRegExpStatics();
      var result;
      try {
        result = fn(text);
      } catch (e) {
        return answerError(e);
      }
      try {
        return answer(result);
      } catch (e) {
        return answerError(e);
      }
    } finally {
      realm.busy = false;
    }
  };
}

jsproj.host = {
  // {ops: [names], writable?: [globals], keep?: [globals]} -> lock the sandbox down (lockdown.js),
  // once, before any load; `ops` are the operations the frozen global __jsprojCall(op, text)
  // may run, `writable` globals the host redeclares, `keep` the host's other globals.
  lockdown: entry(function (text) {
    var options = JSON.parse(text);
    jsproj.lockdown(options.ops, options.writable, options.keep);
    return true;
  }),
  // [{file, source}] -> the description of every projection.
  load: entry(function (text) {
    var next = jsproj.createProjector();
    jsproj.loadInto(next, JSON.parse(text));
    projector = next;
    return jsproj.describe(projector);
  }),
  // {events: [records] | lines: text (records.js), batch: id, options, thenApply?} -> {name: [ids]};
  // keeps the events as batch `id`. For the projections in options.cache, only the
  // documents the cache does not hold are named. With thenApply: {keys} -- or, when the
  // cache holds every document, {applied: the answer of apply}, in the same call.
  route: entry(function (text) {
    var batch = JSON.parse(text);
    routed = NOT_ROUTED;
    var events = jsproj.ownRecords(batch.lines !== undefined ? jsproj.recordsFromLines(batch.lines) : batch.events);
    var result = jsproj.routeBatch(loaded(), events, batch.options);
    var cached = (batch.options && batch.options.cache) || [];
    var keys = cached.length ? cache.missing(result.keys, cached) : result.keys;
    if (!batch.thenApply) {
      if (batch.batch !== undefined) routed = { id: batch.batch, events: events, routed: result, cache: cached };
      return keys;
    }
    if (Object.keys(keys).length === 0) return { applied: applyBatch(events, result, cached, {}, batch.options) };
    routed = { id: batch.batch, events: events, routed: result, cache: cached };
    return { keys: keys };
  }),
  // {events: [records] | lines: text (records.js) | batch: id, documents: {name: {id: doc}}, options}
  // -> {changes, errors}
  apply: entry(function (text) {
    var batch = JSON.parse(text);
    var events = batch.lines !== undefined ? jsproj.recordsFromLines(batch.lines) : batch.events;
    if (events !== undefined) jsproj.ownRecords(events);
    var keys = null, cached = [], documents = batch.documents;
    if (events === undefined) {
      if (routed.id === null || routed.id !== batch.batch) {
        throw jsproj.fail('StaleBatchError', 'batch ' + batch.batch + ' is not the last routed batch: send the events');
      }
      events = routed.events;
      keys = routed.routed;
      cached = routed.cache;
    }
    routed = NOT_ROUTED;
    return applyBatch(events, keys, cached, documents, batch.options);
  }),
  // {projections: [names] | null} -> forget the documents kept for them (null: for all).
  cacheDrop: entry(function (text) {
    cache.drop(JSON.parse(text).projections);
    return { kept: cache.size };
  }),
  // {text, now?, pageSize?} -> {views, aggregates}: the loaded projections over an events file's text,
  // in memory, page by page, as a storing host would apply it (simulate.js).
  simulate: entry(function (text) {
    var request = JSON.parse(text);
    var records = jsproj.normalize(jsproj.parseEvents(request.text), { now: request.now });
    return jsproj.simulate(loaded(), records, { pageSize: request.pageSize, owned: true });
  }),
  // -> {upcasters: [{eventType, from, to, file}], renames: [{from, to, file}]}: what the loaded files declare.
  upcasters: entry(function () {
    return jsproj.describeUpcasters(loaded());
  }),
  // {events: [records]} -> [{event} or {error}]: each event as projections see it (upcast.js).
  upcast: entry(function (text) {
    return jsproj.upcastRecords(loaded(), JSON.parse(text).events);
  }),
  // {text, options} -> [records]
  normalize: entry(function (text) {
    var request = JSON.parse(text);
    return jsproj.normalize(jsproj.parseEvents(request.text), request.options);
  }),
  // {projections: [names], onError?: {name: 'skip' | 'stop'}, emits?: [names]} -> start a build: forget those
  // projections' documents in memory. With a policy, a page a projection fails on is folded
  // by it (policies.js) and the errors are in the answer.
  foldStart: entry(function (text) {
    var request = JSON.parse(text);
    var current = loaded();
    request.projections.forEach(function (name) {
      var p = current.projections[name];
      if (!p) throw jsproj.unknownProjection(name);
      if (p.kind === 'aggregate') p.store.remove(name);
      else p.store.documents.clear();
    });
    fold = { projections: request.projections.slice(), all: request.projections.slice(), onError: request.onError || null,
      emits: request.emits || [], dump: null };
    return { projections: fold.projections };
  }),
  // A page of events as lines (see records.js) -> fold it into the build's documents:
  // {events, errors, emitted}. A projection that stops (policy 'stop') leaves the build; `emitted`: what
  // the projections that may emit emitted ({name: {emits}} as JSON text), or null.
  foldLines: entry(function (text) {
    if (!fold) throw jsproj.fail('EngineError', 'no build in progress: call foldStart first');
    var records = jsproj.ownRecords(jsproj.recordsFromLines(text));
    var options = { projections: fold.projections, onError: fold.onError, emits: fold.emits };
    var result = jsproj.applyInMemory(loaded(), records, options);
    result.errors.forEach(function (error) {
      var name = error.projection;
      if (fold.onError[name] === 'stop') fold.projections = fold.projections.filter(function (n) { return n !== name; });
    });
    var emitted = {}, emitting = false;   // the page's emits, for the host to append (pge_append_emitted)
    Object.keys(result.changes).forEach(function (name) {
      if (result.changes[name].emits) { emitted[name] = { emits: result.changes[name].emits }; emitting = true; }
    });
    return { events: records.length, errors: result.errors.map(jsproj.errorInfo), emitted: emitting ? JSON.stringify(emitted) : null };
  }),
  // {projection, limit} -> {text, rows, more}: the next `limit` documents a build folded for
  // the projection, as COPY text rows (id, data); `more` until every one was given.
  foldRows: entry(function (text) {
    if (!fold) throw jsproj.fail('EngineError', 'no build in progress: call foldStart first');
    var request = JSON.parse(text), name = request.projection;
    if (fold.projections.indexOf(name) < 0) throw jsproj.fail('EngineError', name + ' is not part of the build');
    var p = loaded().projections[name];
    if (!fold.dump || fold.dump.name !== name) {
      var entries = p.kind === 'aggregate'
        ? (p.store.find(name) === undefined ? [] : [[name, p.store.find(name)]])
        : p.store.documents;
      fold.dump = { name: name, entries: entries[Symbol.iterator](), done: false };
    }
    var lines = nextRows(fold.dump, request.limit);
    var more = !fold.dump.done;
    if (!more) fold.dump = null;
    return { text: lines.length ? lines.join('\n') + '\n' : '', rows: lines.length, more: more };
  }),
  // -> end the build: forget the documents it folded (the host has them now, or gave up).
  foldEnd: entry(function () {
    if (fold) {
      var current = loaded();
      fold.all.forEach(function (name) {       // those that left the build too
        var p = current.projections[name];
        if (p.kind === 'aggregate') p.store.remove(name);
        else p.store.documents.clear();
      });
    }
    fold = null;
    return {};
  }),
  // {code} -> {value: text, projections: [descriptions]}: REPL input, run with the DSL
  // against a scratch projector of its own (the loaded projections stay as they are).
  evaluate: entry(function (text) {
    if (!scratch) scratch = jsproj.createProjector();
    var value = jsproj.evaluate(scratch, JSON.parse(text).code);
    return { value: show(value), projections: jsproj.describe(scratch) };
  }),
  // Let go of everything this engine holds (the projections, and what their files keep), for a host
  // that drops it and loads afresh in the same context: the context's built-ins may keep this engine's
  // code alive (it installed them), never what it loaded. Hosts only, as `current`.
  dispose: function () {
    projector = null;
    routed = NOT_ROUTED;
    fold = null;
    scratch = null;
    cache = new jsproj.DocumentCache();
    return '{"ok": {}}';
  },
  // What was running when a call was stopped: {file, projection, position, eventId, ...}.
  // Only hosts reach it (a function handle, or the PLV8/PL/JS token), after a call a limit or
  // cancel stopped, so it is not an entry. It does not end that call (a stopped call never ran
  // its `finally`): a host whose context goes on after a stop ends it where it knows the call is
  // over (PLV8 and PL/JS: sql/engines/javascript.sql); the others drop the context.
  current: function () {
    var current = jsproj.current, meta = current.meta;
    return JSON.stringify({ ok: {
      file: current.file,
      projection: current.projection,
      upcaster: current.upcaster || null,
      position: meta ? meta.position : null,
      streamId: meta ? meta.streamId : null,
      eventId: meta ? meta.eventId : null,
      eventType: meta ? meta.eventType : null
    } });
  }
};

// The context's realm (realm.js), for a host that evaluates more engines in the same
// context (PLV8, PL/JS: one per store). Hosts only: projection code never gets `host`.
Object.defineProperty(jsproj.host, 'realm', { value: realm });
