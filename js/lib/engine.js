'use strict';
// The pure batch engine every host calls: route a batch of event records to
// the documents they touch, then apply the batch to those documents.
//
// An event record: {position, streamId, streamType, version, timestamp,
// metadata, event}, where event is {$type, $id, ...data}. Projections see it
// as the upcasters and renames make it (upcast.js): each record a projection
// of the call goes to is upcast first, once per batch.
//
// What projection code can and cannot do here: each user call (handler,
// $init, transform, identifiedBy) runs with the clock of its event
// (clock.js); identifiedBy gets a frozen copy of the event, and each
// delivery to a handler or transform its own copy, so no projection can
// change what another sees; after each delivery the state becomes a fresh
// document by the value rule (documents.js), so no reference a handler kept
// can change it later, and views do not depend on how events were batched.

var fail = jsproj.fail, dict = jsproj.dict, has = jsproj.has, clone = jsproj.clone;
var describeThrown = jsproj.describeThrown, firstLine = jsproj.firstLine, isPlainObject = jsproj.isPlainObject;
var DELETE = jsproj.DELETE, fold = jsproj.fold, metaOf = jsproj.metaOf;
var enter = jsproj.enter, leave = jsproj.leave, frozenCopy = jsproj.frozenCopy;
var isUpcastFailure = jsproj.isUpcastFailure, UpcastFailure = jsproj.UpcastFailure;

function checkRecord(record, index) {
  if (!isPlainObject(record) || !isPlainObject(record.event)) {
    throw fail('EngineError', 'batch item ' + (index + 1) + ' is not an event record ' +
      '{position, streamId, streamType, version, timestamp, event}');
  }
  if (typeof record.event.$type !== 'string' || record.event.$type === '') {
    throw fail('InvalidEventError', 'the event at position ' + record.position + ' has no $type',
      { position: record.position === undefined ? null : record.position, streamId: record.streamId === undefined ? null : record.streamId });
  }
}

// A predicate choosing the projections a call runs (options.projections).
function selection(projector, options) {
  var names = options && options.projections;
  if (names === undefined || names === null) return null;
  if (!Array.isArray(names)) throw fail('EngineError', 'options.projections must be a list of names');
  var chosen = new Set();
  names.forEach(function (name) {
    if (!has(projector.projections, name)) throw jsproj.unknownProjection(name);
    chosen.add(name);
  });
  return chosen;
}

// The error for projection code that threw on an event. The event is named
// from `meta`, frozen before any projection code ran: a handler that changed
// its copy of the event cannot change what the error says.
function handlerError(projection, meta, thrown) {
  if (jsproj.isEngineError(thrown) && thrown.kind === 'DocumentError') return thrown;
  if (isUpcastFailure(thrown)) return thrown.errorFor(projection.name);
  var t = describeThrown(thrown);
  var error = fail('ProjectionHandlerError',
    'projection ' + projection.name + ' failed on ' + meta.eventType + ' event' + (meta.eventId === null ? '' : ' ' + meta.eventId) +
    ' (stream ' + meta.streamId + ', version ' + meta.version + ', position ' + meta.position + '): ' +
    t.name + ': ' + firstLine(t.message),
    {
      projection: projection.name, eventId: meta.eventId, eventType: meta.eventType,
      streamId: meta.streamId, version: meta.version, position: meta.position,
      error: { name: t.name, message: t.message }
    });
  error.jsStack = jsproj.userStack(t.stack) || t.name + ': ' + t.message;
  error.stack = error.jsStack;        // what Node users see first
  return error;
}

// The documents of a view an event goes to: identifiedBy on a frozen copy of
// the event, with the event's clock. Returns the keys or {thrown}.
function viewKeys(p, keyEvent, meta) {
  enter(meta, p.name);
  try {
    return p.keysFor(keyEvent, meta);
  } catch (e) {
    if (jsproj.outOfMemory(e)) throw jsproj.memoryError(p.name, meta);
    return { thrown: e };
  } finally {
    leave();
  }
}

// Route a batch: which documents it touches, per projection ({name: [ids]};
// event projections load nothing and are left out), and the keys each
// view's identifiedBy gave for each event, so that apply uses the same keys
// without calling identifiedBy again.
function routeBatch(projector, records, options) {
  var selected = selection(projector, options);
  var partitions = jsproj.partitionsOf(projector, options);
  var excluded = jsproj.excludedOf(projector, options);
  var seen = new Map();
  var keys = dict();
  var views = [];             // per record index: Map(view name -> keys or {thrown}), or undefined
  var upcasts = upcasting(projector) ? newUpcasts(projector, records) : null;
  function add(name, key) {
    if (!jsproj.handles(partitions, name, key)) return;
    var set = seen.get(name);
    if (!set) { set = new Set(); seen.set(name, set); keys[name] = []; }
    if (!set.has(key)) { set.add(key); keys[name].push(key); }
  }
  for (var i = 0; i < records.length; i++) {
    var record = records[i];
    checkRecord(record, i);
    var upcast = upcasts === null ? undefined : upcasts.plans.get(record.event.$type);
    var targets = projector.targetsFor(record.streamType, upcast === undefined ? record.event.$type : upcast.type);
    if (upcast !== undefined && targets.length > 0 && wanted(targets, selected, null)) {
      record = seenRecord(projector, upcasts, records, i, upcast);
      if (record instanceof UpcastFailure) continue;   // apply reports it to each projection it was going to
    }
    var meta = null, keyEvent = null;
    for (var t = 0; t < targets.length; t++) {
      var p = targets[t];
      if (selected !== null && !selected.has(p.name)) continue;
      if (excluded !== null && excluded.has(p.name) && excluded.get(p.name).has(record.position)) continue;
      if (p.kind === 'stream') add(p.name, record.streamId);
      else if (p.kind === 'aggregate') add(p.name, p.name);
      else if (p.kind === 'view') {
        meta = meta || metaOf(record);
        keyEvent = keyEvent || frozenCopy(record.event);
        var found = viewKeys(p, keyEvent, meta);
        if (!views[i]) views[i] = new Map();
        views[i].set(p.name, found);
        if (Array.isArray(found)) for (var k = 0; k < found.length; k++) add(p.name, found[k]);
      }
    }
  }
  return { keys: keys, views: views, upcasts: upcasts };
}

// -- upcasting (upcast.js) ----------------------------------------------------

// Whether events go through upcasters or renames here. What was declared is
// checked first: a problem of it (a rename cycle, ...) is thrown before any event.
function upcasting(projector) {
  if (!projector.upcasters.active()) return false;
  projector.upcasters.ready();
  return true;
}

// What a batch's upcasting keeps: the plan of each stored type, and per record index the record as
// projections see it (or an upcast failure) and its meta, made once for route and apply. `owned`:
// the records are the engine's own (ownRecords), upcast in place.
function newUpcasts(projector, records) {
  return { plans: projector.upcasters.plans, seen: [], metas: [], owned: owned.has(records) };
}

// Batches of records the host interface made for a call (host.js parses them; simulate.js pages
// records normalize made): no host holds them, so upcasting changes them in place (upcast.js).
var owned = new WeakSet();
function ownRecords(records) {
  owned.add(records);
  return records;
}

// Whether any of `targets` runs in this call: upcasters run only for events a projection of the call sees.
function wanted(targets, selected, failed) {
  for (var t = 0; t < targets.length; t++) {
    var name = targets[t].name;
    if ((selected === null || selected.has(name)) && (failed === null || !failed.has(name))) return true;
  }
  return false;
}

// records[i] (stored as a type `plan` covers) as projections see it, or an upcast failure: upcast once
// per batch, with its meta, so that apply makes neither again.
function seenRecord(projector, upcasts, records, i, plan) {
  var known = upcasts.seen[i];
  if (known !== undefined) return known;
  var upcasters = projector.upcasters, seen = upcasts.seen[i] = upcasters.upcast(records[i], plan, upcasts.owned);
  if (upcasters.meta !== null) upcasts.metas[i] = upcasters.meta;
  return seen;
}

// An event whose upcasting failed: an error for each projection of the call it was going to, as a
// handler's (their policies skip or stop it; a view's partitions all do, its keys being unknown).
function failUpcast(batch, targets, failure, index) {
  var record = failure.record;
  for (var t = 0; t < targets.length; t++) {
    var p = targets[t];
    if ((batch.selected !== null && !batch.selected.has(p.name)) || batch.failed.has(p.name)) continue;
    if (batch.excluded !== null && batch.excluded.has(p.name) && batch.excluded.get(p.name).has(record.position)) continue;
    if (p.kind === 'stream' && !jsproj.handles(batch.partitions, p.name, record.streamId)) continue;
    failDelivery(batch, p, failure.meta, failure, index, []);
  }
}

function route(projector, records, options) {
  return routeBatch(projector, records, options).keys;
}

// One call's work: per projection, the documents it read and changed.
function Work(projection, policy) {
  this.projection = projection;
  this.policy = policy;       // 'skip', 'stop' or undefined (policies.js)
  this.docs = new Map();      // id -> state, DELETE or a document
  this.dirty = new Set();     // ids changed
  this.sizes = null;          // id -> size of a large document (tracked next time: tracking.js)
  this.tracked = null;        // ids of documents changed in place (put in jsonb's key order at the end)
  this.walked = null;         // ids of large documents their handler walks: copied, not tracked
  this.emits = null;          // record index -> the events its deliveries emitted (emits.js)
  // With a policy: each document as it was before the call's deliveries (or
  // since the last failure), and the records delivered to it since, so that
  // a failed event can be taken out of the one document it touched.
  this.base = policy ? new Map() : null;
  this.history = policy ? new Map() : null;
}

// Apply a batch. `documents` holds, per projection, every document that
// route() named ({name: {id: state or null}}). The result holds, per
// projection, the changed documents: {changes: {name: {kind, upserts: {id:
// state}, deletes: [ids]}}, errors: [...]}. A projection whose code throws
// contributes no changes at all for the batch and one error, so a host
// can retry, skip or stop it; the other projections are unaffected --
// unless options.onError says to skip the event or stop there
// (policies.js, with options.exclude and options.partitions). The
// supplied documents belong to the call: handlers may change them in place.
// `routed` is what routeBatch gave for these records, if the host has it.
function apply(projector, records, documents, options, routed) {
  var upcasts = upcasting(projector) ? (routed && routed.upcasts) || newUpcasts(projector, records) : null;
  var batch = {
    records: upcasts === null ? records : records.slice(),   // as projections see them (policies fold them again)
    selected: selection(projector, options),
    policies: jsproj.policiesOf(projector, options),
    excluded: jsproj.excludedOf(projector, options),
    partitions: jsproj.partitionsOf(projector, options),
    emits: jsproj.emits.allowedOf(options),
    supplied: documents || {},
    views: routed ? routed.views : [],
    work: new Map(),
    failed: new Set(),
    errors: []
  };
  var plan = [];               // flat [projection, key, projection, key, ...] for one record
  for (var i = 0; i < records.length; i++) {
    var record = records[i];
    checkRecord(record, i);
    var upcast = upcasts === null ? undefined : upcasts.plans.get(record.event.$type);
    var targets = projector.targetsFor(record.streamType, upcast === undefined ? record.event.$type : upcast.type);
    if (targets.length === 0) continue;
    if (upcast !== undefined && wanted(targets, batch.selected, batch.failed)) {
      record = batch.records[i] = seenRecord(projector, upcasts, records, i, upcast);
      if (record instanceof UpcastFailure) {
        batch.records[i] = record.record;
        failUpcast(batch, targets, record, i);
        continue;
      }
    }
    var meta = (upcast !== undefined && upcasts.metas[i]) || metaOf(record);
    plan.length = 0;
    planDeliveries(batch, targets, record, i, meta, plan);
    deliver(batch, plan, record, i, meta);
  }
  var changes = dict();
  batch.work.forEach(function (w, name) {
    var upserts = dict();
    var deletes = [];
    w.dirty.forEach(function (key) {
      var state = w.docs.get(key);
      if (state === DELETE) deletes.push(key);
      else upserts[key] = w.tracked !== null && w.tracked.has(key) ? inOrder(state) : state;
    });
    changes[name] = { kind: w.projection.kind, upserts: upserts, deletes: deletes };
    if (w.emits !== null && w.emits.size) changes[name].emits = emitsOf(batch, w);
  });
  return { changes: changes, errors: batch.errors };
}

function failProjection(batch, p, meta, thrown) {
  batch.failed.add(p.name);
  batch.work.delete(p.name);
  batch.errors.push(handlerError(p, meta, thrown));
}

// Projection code threw on record `index`: by the projection's policy, the
// record is taken out of the documents it reached (skip), and the
// projection gets nothing more (stop); without one, the projection fails.
function failDelivery(batch, p, meta, thrown, index, keys) {
  var policy = batch.policies !== null ? batch.policies.get(p.name) : undefined;
  if (policy === undefined) return failProjection(batch, p, meta, thrown);
  var w = batch.work.get(p.name);
  try {
    if (w) keys.forEach(function (key) { takeOut(batch, w, key, index); });
  } catch (e) {
    // Folding the document again threw where it did not before: the code is not deterministic. What it
    // did in the call is dropped (`discarded`): a host stops it where the call began.
    failProjection(batch, p, metaOf(batch.records[index]), e);
    batch.errors[batch.errors.length - 1].discarded = true;
    return;
  }
  batch.errors.push(handlerError(p, meta, thrown));
  if (policy === 'stop') batch.failed.add(p.name);   // keeping its work
}

// A document as if record `index` had not been delivered to it: its state
// before the call (or the last failure) with the records since folded in
// again -- projection code is deterministic -- and that as the new base.
function takeOut(batch, w, key, index) {
  if (!w.base.has(key)) return;   // the record reached it before any state was taken
  var history = w.history.get(key);
  if (history.length && history[history.length - 1] === index) history.pop();
  var state = stateCopy(w.base.get(key));
  if (w.emits !== null) w.emits.delete(index);
  jsproj.emits.replaying();   // the records folded again emitted their events already
  try {
    for (var h = 0; h < history.length; h++) {
      var record = batch.records[history[h]];
      state = fold(w.projection, state, clone(record.event), metaOf(record), key);
    }
  } finally {
    jsproj.emits.abort();
  }
  w.docs.set(key, state);
  w.base.set(key, stateCopy(state));
  w.history.set(key, []);
  keepSize(w, key, null);
  if (w.tracked !== null) w.tracked.delete(key);
  if (history.length === 0 && state === null) w.dirty.delete(key);
}

function stateCopy(state) {
  return state === null || state === DELETE ? state : clone(state);
}

// The deliveries of one record: each target projection with the document
// key it goes to (null for event projections).
function planDeliveries(batch, targets, record, index, meta, plan) {
  var keyEvent = null;
  for (var t = 0; t < targets.length; t++) {
    var p = targets[t];
    if ((batch.selected !== null && !batch.selected.has(p.name)) || batch.failed.has(p.name)) continue;
    if (batch.excluded !== null && batch.excluded.has(p.name) && batch.excluded.get(p.name).has(record.position)) continue;
    if (p.kind === 'stream') planKey(batch, plan, p, record.streamId);
    else if (p.kind === 'aggregate') plan.push(p, p.name);
    else if (p.kind === 'event') plan.push(p, null);
    else {
      var known = batch.views[index];
      var keys = known && known.has(p.name) ? known.get(p.name) : null;
      if (keys === null) keys = viewKeys(p, keyEvent = keyEvent || frozenCopy(record.event), meta);
      if (!Array.isArray(keys)) { failDelivery(batch, p, meta, keys.thrown, index, []); continue; }
      for (var k = 0; k < keys.length; k++) planKey(batch, plan, p, keys[k]);
    }
  }
}

function planKey(batch, plan, p, key) {
  if (jsproj.handles(batch.partitions, p.name, key)) plan.push(p, key);
}

// Run the deliveries of one record. Each gets an event of its own (the last
// one the record's, unless a policy may fold the record again), so that a
// handler keeping or changing its event cannot reach another projection or
// document. A projection that throws gets no more deliveries of the record.
function deliver(batch, plan, record, index, meta) {
  var deliveries = plan.length / 2, evt = record.event, thrown = null;
  for (var d = 0; d < deliveries; d++) {
    var target = plan[2 * d], key = plan[2 * d + 1];
    if (batch.failed.has(target.name) || (thrown !== null && thrown.has(target.name))) continue;
    var event = d < deliveries - 1 || batch.policies !== null ? clone(evt) : evt;
    try {
      if (target.kind === 'event') deliverTransform(batch, target, event, meta, record.streamId);
      else deliverHandler(batch, target, key, event, meta, index);
    } catch (e) {
      if (jsproj.isEngineError(e) && e.kind === 'EngineError') throw e;   // the host's mistake, not the projection's
      if (jsproj.outOfMemory(e)) throw jsproj.memoryError(target.name, meta);   // a limit: the call ends
      if (thrown === null) thrown = new Set();
      thrown.add(target.name);
      failDelivery(batch, target, meta, e, index, keysOf(plan, target, d));
    }
  }
}

// The keys of a record's deliveries to `p`, up to delivery `last`.
function keysOf(plan, p, last) {
  var keys = [];
  for (var d = 0; d <= last; d++) if (plan[2 * d] === p && keys.indexOf(plan[2 * d + 1]) < 0) keys.push(plan[2 * d + 1]);
  return keys;
}

function workFor(batch, p) {
  var w = batch.work.get(p.name);
  if (!w) {
    w = new Work(p, batch.policies !== null ? batch.policies.get(p.name) : undefined);
    batch.work.set(p.name, w);
  }
  return w;
}

function deliverTransform(batch, target, event, meta, streamId) {
  var out = target.project(event, meta, streamId);
  if (out) {
    var w = workFor(batch, target);
    w.docs.set(out.key, out.view);
    w.dirty.add(out.key);
  }
}

function deliverHandler(batch, target, key, event, meta, index) {
  var w = workFor(batch, target);
  var state = w.docs.get(key);          // as the batch has it so far (never undefined), else as supplied
  if (state === undefined) {
    state = supplied(batch, target, key);
    if (w.base !== null) { w.base.set(key, stateCopy(state)); w.history.set(key, []); }
  }
  var absent = state === null || state === DELETE;
  if (!absent && !target.handlers.handlerFor(event.$type) && !jsproj.deletedBy(target, event)) return;  // nothing to do
  var size = w.sizes === null || absent || (w.walked !== null && w.walked.has(key)) ? undefined : w.sizes.get(key);
  var call = jsproj.emits.begin(batch.emits, target.name, meta), next, out;
  try {
    if (size === undefined) next = fold(target, state, event, meta, key);
    else out = jsproj.foldTracked(target, state, size, event, meta, key);
  } catch (e) {
    jsproj.emits.abort();
    throw e;
  }
  keepEmits(w, index, jsproj.emits.end(call));   // (throws what the handler caught of an emit's refusal)
  if (size === undefined) {             // copied by the value rule (documents.js)
    w.docs.set(key, next);
    keepSize(w, key, next === DELETE ? null : jsproj.documentSizeOfLast());
  } else {                              // large: tracked (tracking.js)
    w.docs.set(key, out === DELETE ? DELETE : out.document);
    keepSize(w, key, out === DELETE ? null : out.size);
    if (out !== DELETE && out.document === state) {
      if (w.tracked === null) w.tracked = new Set();
      w.tracked.add(key);
    }
    if (out !== DELETE && out.walked) {
      if (w.walked === null) w.walked = new Set();
      w.walked.add(key);
    }
  }
  w.dirty.add(key);
  if (w.history !== null) w.history.get(key).push(index);
}

// The events a delivery of record `index` emitted, after those of its earlier deliveries (other keys).
function keepEmits(w, index, list) {
  if (list === null) return;
  if (w.emits === null) w.emits = new Map();
  var kept = w.emits.get(index);
  w.emits.set(index, kept ? kept.concat(list) : list);
}

// A projection's emits in record order, each with its source event and index (emits.js).
function emitsOf(batch, w) {
  var all = [];
  w.emits.forEach(function (list, index) {
    var causedBy = batch.records[index].event.$id;
    for (var i = 0; i < list.length; i++) {
      var e = list[i];
      all.push({ causedBy: causedBy, index: i, streamId: e.streamId, eventType: e.eventType, data: e.data, metadata: e.metadata });
    }
  });
  return all;
}

function keepSize(w, key, size) {
  if (size !== null) {
    if (w.sizes === null) w.sizes = new Map();
    w.sizes.set(key, size);
  } else if (w.sizes !== null) {
    w.sizes.delete(key);
  }
}

// A document changed in place, with its keys in jsonb's order again.
function inOrder(document) {
  return jsproj.toDocument(document, null, null, NO_EVENT);
}
var NO_EVENT = Object.freeze({ eventId: null, eventType: null, position: null });

// A document as the host supplied it (null: it does not exist).
function supplied(batch, p, key) {
  var bucket = has(batch.supplied, p.name) ? batch.supplied[p.name] : null;
  if (!bucket || !has(bucket, key)) {
    if (p.kind === 'view') {
      // route() named other keys for this event: identifiedBy is not a function of the event alone.
      throw new Error('identifiedBy returned ' + JSON.stringify(key) + ' now but not when the batch was routed: ' +
        'it must depend only on the event and its metadata');
    }
    throw fail('EngineError', 'document ' + JSON.stringify(key) + ' of ' + p.name + ' was not supplied: ' +
      'pass every document route() names, null for one that does not exist', { projection: p.name });
  }
  var state = bucket[key];
  return state === undefined ? null : state;
}

// Route, load from the projector's in-memory store, apply, write back: the
// host loop of the Node projector, of simulation and of builds. Throws the
// first error -- unless options.onError has a policy for every projection
// that failed: their errors are then in the result, with what they did.
function applyInMemory(projector, records, options) {
  var routed = routeBatch(projector, records, options);
  var documents = dict();
  Object.keys(routed.keys).forEach(function (name) {
    var store = projector.projections[name].store;
    var bucket = dict();
    routed.keys[name].forEach(function (id) {
      var doc = store.find(id);
      bucket[id] = doc === undefined ? null : clone(doc);
    });
    documents[name] = bucket;
  });
  var result = apply(projector, records, documents, options, routed);
  var policies = options && options.onError;
  result.errors.forEach(function (error) {
    if (!policies || !has(policies, error.projection)) throw error;
  });
  Object.keys(result.changes).forEach(function (name) {
    var store = projector.projections[name].store;
    var change = result.changes[name];
    Object.keys(change.upserts).forEach(function (id) { store.update(id, change.upserts[id]); });
    change.deletes.forEach(function (id) { store.remove(id); });
  });
  return result;
}

jsproj.route = route;
jsproj.routeBatch = routeBatch;
jsproj.apply = apply;
jsproj.applyInMemory = applyInMemory;
jsproj.ownRecords = ownRecords;
