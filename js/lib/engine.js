'use strict';
// The pure batch engine every host calls: route a batch of event records to
// the documents they touch, then apply the batch to those documents.
//
// An event record: {position, streamId, streamType, version, timestamp,
// metadata, event}, where event is {$type, $id, ...data}.

var fail = jsproj.fail, dict = jsproj.dict, has = jsproj.has, clone = jsproj.clone;
var describeThrown = jsproj.describeThrown, firstLine = jsproj.firstLine, isPlainObject = jsproj.isPlainObject;
var DELETE = jsproj.DELETE, step = jsproj.step, metaOf = jsproj.metaOf, current = jsproj.current;

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
  if (names === undefined || names === null) return function () { return true; };
  if (!Array.isArray(names)) throw fail('EngineError', 'options.projections must be a list of names');
  var chosen = new Set();
  names.forEach(function (name) {
    if (!has(projector.projections, name)) throw jsproj.unknownProjection(name);
    chosen.add(name);
  });
  return function (p) { return chosen.has(p.name); };
}

function handlerError(projection, record, thrown) {
  var t = describeThrown(thrown);
  var evt = record.event;
  var eventId = evt.$id === undefined ? null : evt.$id;
  var error = fail('ProjectionHandlerError',
    'projection ' + projection.name + ' failed on ' + evt.$type + ' event' + (eventId === null ? '' : ' ' + eventId) +
    ' (stream ' + record.streamId + ', version ' + record.version + ', position ' + record.position + '): ' +
    t.name + ': ' + firstLine(t.message),
    {
      projection: projection.name, eventId: eventId, eventType: evt.$type,
      streamId: record.streamId === undefined ? null : record.streamId,
      version: record.version === undefined ? null : record.version,
      position: record.position === undefined ? null : record.position,
      error: { name: t.name, message: t.message }
    });
  error.jsStack = jsproj.userStack(t.stack) || t.name + ': ' + t.message;
  error.stack = error.jsStack;        // what Node users see first
  return error;
}

// Which documents the batch touches, per projection: {name: [ids]}. Event
// projections load nothing (a transform does not read state) and are left out.
function route(projector, records, options) {
  var selected = selection(projector, options);
  var seen = new Map();
  var keys = dict();
  function add(name, key) {
    var set = seen.get(name);
    if (!set) { set = new Set(); seen.set(name, set); keys[name] = []; }
    if (!set.has(key)) { set.add(key); keys[name].push(key); }
  }
  for (var i = 0; i < records.length; i++) {
    var record = records[i];
    checkRecord(record, i);
    var targets = projector.targetsFor(record.streamType, record.event.$type);
    var meta = null;
    for (var t = 0; t < targets.length; t++) {
      var p = targets[t];
      if (!selected(p)) continue;
      if (p.kind === 'stream') add(p.name, record.streamId);
      else if (p.kind === 'aggregate') add(p.name, p.name);
      else if (p.kind === 'view') {
        meta = meta || metaOf(record);
        current.projection = p.name;
        current.record = record;
        var viewKeys;
        try { viewKeys = p.keysFor(record.event, meta); } catch (e) { continue; }  // apply reports it
        for (var k = 0; k < viewKeys.length; k++) add(p.name, viewKeys[k]);
      }
    }
  }
  current.projection = null;
  current.record = null;
  return keys;
}

// Apply a batch. `documents` holds, per projection, every document that
// route() named ({name: {id: state or null}}). The result holds, per
// projection, the changed documents: {changes: {name: {kind, upserts: {id:
// state}, deletes: [ids]}}, errors: [...]}. A projection whose handler
// throws contributes no changes at all for the batch and one error, so a host
// can retry, skip or stop it; the other projections are unaffected. The
// supplied documents belong to the call: handlers may change them in place.
function apply(projector, records, documents, options) {
  var selected = selection(projector, options);
  var supplied = documents || {};
  var work = new Map();        // name -> {projection, docs: Map(id -> state), dirty: Set(id)}
  var failed = new Set();
  var errors = [];

  function workFor(p) {
    var w = work.get(p.name);
    if (!w) { w = { projection: p, docs: new Map(), dirty: new Set() }; work.set(p.name, w); }
    return w;
  }
  function loaded(p, w, key) {
    if (w.docs.has(key)) return w.docs.get(key);
    var bucket = has(supplied, p.name) ? supplied[p.name] : null;
    if (!bucket || !has(bucket, key)) {
      throw fail('EngineError', 'document ' + JSON.stringify(key) + ' of ' + p.name + ' was not supplied: ' +
        'pass every document route() names, null for one that does not exist', { projection: p.name });
    }
    return bucket[key];
  }
  function failProjection(p, record, thrown) {
    failed.add(p.name);
    work.delete(p.name);
    errors.push(handlerError(p, record, thrown));
  }

  var plan = [];
  for (var i = 0; i < records.length; i++) {
    var record = records[i];
    checkRecord(record, i);
    var evt = record.event;
    var targets = projector.targetsFor(record.streamType, evt.$type);
    if (targets.length === 0) continue;
    var meta = null;
    current.record = record;
    plan.length = 0;           // flat [projection, key, projection, key, ...]
    for (var t = 0; t < targets.length; t++) {
      var p = targets[t];
      if (!selected(p) || failed.has(p.name)) continue;
      meta = meta || metaOf(record);
      if (p.kind === 'stream') plan.push(p, record.streamId);
      else if (p.kind === 'aggregate') plan.push(p, p.name);
      else if (p.kind === 'event') plan.push(p, null);
      else {
        current.projection = p.name;
        var viewKeys;
        try { viewKeys = p.keysFor(evt, meta); } catch (e) { failProjection(p, record, e); continue; }
        for (var k = 0; k < viewKeys.length; k++) plan.push(p, viewKeys[k]);
      }
    }
    // Each delivery gets an event of its own, so that a handler keeping or
    // changing part of the event cannot reach another projection or document.
    var deliveries = plan.length / 2;
    var copies = [];
    for (var c = 1; c < deliveries; c++) copies.push(clone(evt));
    for (var d = 0; d < deliveries; d++) {
      var target = plan[2 * d], key = plan[2 * d + 1];
      if (failed.has(target.name)) continue;
      var event = d < deliveries - 1 ? copies[d] : evt;
      current.projection = target.name;
      if (target.kind === 'event') {
        var out;
        try { out = target.project(event, meta, record.streamId); } catch (e) { failProjection(target, record, e); continue; }
        if (out) {
          var we = workFor(target);
          we.docs.set(out.key, out.view);
          we.dirty.add(out.key);
        }
        continue;
      }
      var w = workFor(target);
      var state = loaded(target, w, key);
      var absent = state === null || state === undefined || state === DELETE;
      if (!absent && !target.handlers.handlerFor(event.$type)) continue;   // nothing to do
      var next;
      try { next = step(target.handlers, state, event, meta); } catch (e) { failProjection(target, record, e); continue; }
      w.docs.set(key, next);
      w.dirty.add(key);
    }
  }
  current.projection = null;
  current.record = null;

  var changes = dict();
  work.forEach(function (w, name) {
    var upserts = dict();
    var deletes = [];
    w.dirty.forEach(function (key) {
      var state = w.docs.get(key);
      if (state === DELETE) deletes.push(key);
      else upserts[key] = state;
    });
    changes[name] = { kind: w.projection.kind, upserts: upserts, deletes: deletes };
  });
  return { changes: changes, errors: errors };
}

// Route, load from the projector's in-memory store, apply, write back: the
// host loop of the Node projector and of simulation. Throws the first error.
function applyInMemory(projector, records, options) {
  var keys = route(projector, records, options);
  var documents = dict();
  Object.keys(keys).forEach(function (name) {
    var store = projector.projections[name].store;
    var bucket = dict();
    keys[name].forEach(function (id) {
      var doc = store.find(id);
      bucket[id] = doc === undefined ? null : clone(doc);
    });
    documents[name] = bucket;
  });
  var result = apply(projector, records, documents, options);
  if (result.errors.length) throw result.errors[0];
  Object.keys(result.changes).forEach(function (name) {
    var store = projector.projections[name].store;
    var change = result.changes[name];
    Object.keys(change.upserts).forEach(function (id) { store.update(id, change.upserts[id]); });
    change.deletes.forEach(function (id) { store.remove(id); });
  });
  return result;
}

jsproj.route = route;
jsproj.apply = apply;
jsproj.applyInMemory = applyInMemory;
