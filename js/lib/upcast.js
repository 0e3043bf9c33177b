'use strict';
// Upcasters: events as projections see them, whatever shape they were stored
// in. Projection files declare them with the DSL:
//   projections.upcast(type).from(n).by(function (evt, meta) { ... })
// turns an event of that type at schema version n (its $version; an event
// without one is at version 1) into version n + 1, and
//   projections.renameEvent(oldType).to(newType)
// gives the events stored under an old type name the new one. Before any
// projection sees an event, its type is renamed, then the upcasters of that
// type run one after the other, version by version (v1 -> v2 -> v3). The
// stored log never changes: this is what the engine hands projections.
//
// An upcaster is projection code and runs as a handler does: with the clock
// of its event (clock.js), on a copy of the event, within the call's time
// and memory limits; what it returns becomes an event by the value rule
// (documents.js) -- a fresh copy, keys in jsonb's order after $type and $id,
// as a stored event of that shape reads -- so that nothing it keeps can
// change what a projection sees later, and upcasting does not depend on
// batching or host. One that throws, or returns what is not an event, fails
// the event for every projection it was going to (UpcastError: a
// ProjectionHandlerError, which a daemon dead-letters as it does a handler's).

var fail = jsproj.fail, definitionError = jsproj.definitionError, badId = jsproj.badId;
var clone = jsproj.clone, has = jsproj.has, isPlainObject = jsproj.isPlainObject, typeName = jsproj.typeName;
var describeThrown = jsproj.describeThrown, firstLine = jsproj.firstLine, compareKeys = jsproj.compareKeys;
var DELETE = jsproj.DELETE, metaOf = jsproj.metaOf, enter = jsproj.enter, leave = jsproj.leave;
var documentPart = jsproj.documentPart, documentMayBeTooLarge = jsproj.documentMayBeTooLarge;
var isIndexKey = jsproj.isIndexKey, isEngineError = jsproj.isEngineError, MAX_SIZE = jsproj.MAX_DOCUMENT_SIZE;

// The schema versions an upcaster may start from: as .version() of a projection.
var MAX_VERSION = 999999;
var VERSION_KEY = '$version';

function Upcaster(eventType, from, fn, file) {
  this.eventType = eventType;
  this.from = from;
  this.fn = fn;
  this.file = file;
  this.label = eventType + ' from version ' + from;
}

// What the engine does with an event stored under `type` (null: nothing).
function Plan(type, renamed, chain) {
  this.type = type;           // the type projections see
  this.renamed = renamed;
  this.chain = chain;         // Map(from version -> Upcaster) of that type, or null
}

// The upcasters and renames of one projector. `projections()` lists its
// projections (a handler of a type renamed away is an error).
function Upcasters(projections) {
  this.projections = projections;
  this.meta = null;           // the meta of the last record upcast (upcast)
  this.chains = new Map();    // event type -> Map(from version -> Upcaster)
  this.renames = new Map();   // old type -> {to, file}
  this.plans = null;          // stored type -> Plan, once checked (null: to check)
}

Upcasters.prototype.active = function () {
  return this.chains.size > 0 || this.renames.size > 0;
};

function checkTypeName(value, what, file) {
  var reason = badId(value);
  if (reason) throw definitionError(file, what + ': the event type ' + reason, null);
  return value;
}

// projections.upcast(eventType).from(from).by(fn). In a file, a second
// upcaster of the same type and version is an error; in code (the Node API)
// it replaces the first, as a projection does.
Upcasters.prototype.add = function (eventType, from, fn, file) {
  var what = 'upcast(' + JSON.stringify(eventType) + ')';
  checkTypeName(eventType, what, file);
  if (typeof from !== 'number' || !Number.isInteger(from) || from < 1 || from > MAX_VERSION) {
    throw definitionError(file, what + '.from() takes the version it upcasts from, a whole number from 1 to ' +
      MAX_VERSION + ', not ' + (typeof from === 'number' ? String(from) : JSON.stringify(from)), null);
  }
  if (typeof fn !== 'function') {
    throw definitionError(file, what + '.from(' + from + ').by() needs a function of the event, not ' + typeName(fn), null);
  }
  var chain = this.chains.get(eventType);
  if (!chain) this.chains.set(eventType, chain = new Map());
  var other = chain.get(from);
  if (other && file !== null) {
    throw definitionError(file, 'the upcaster of ' + eventType + ' from version ' + from + ' is defined twice' +
      (other.file ? ' (first in ' + other.file + ')' : ''), null);
  }
  var upcaster = new Upcaster(eventType, from, fn, file);
  chain.set(from, upcaster);
  this.plans = null;
  return Object.freeze({ eventType: eventType, from: from, to: from + 1 });
};

// projections.renameEvent(from).to(to).
Upcasters.prototype.rename = function (from, to, file) {
  var what = 'renameEvent(' + JSON.stringify(from) + ')';
  checkTypeName(from, what, file);
  checkTypeName(to, what + '.to(' + JSON.stringify(to) + ')', file);
  if (from === to) throw definitionError(file, what + '.to() names the same type: a rename needs a new name', null);
  var other = this.renames.get(from);
  if (other && file !== null) {
    throw definitionError(file, what + ' is defined twice' + (other.file ? ' (first in ' + other.file + ')' : ''), null);
  }
  this.renames.set(from, { to: to, file: file });
  this.plans = null;
  return Object.freeze({ from: from, to: to });
};

// The name events stored as `type` end with, after every rename.
Upcasters.prototype.finalType = function (type) {
  var seen = [type];
  for (var next = this.renames.get(type); next; next = this.renames.get(type)) {
    type = next.to;
    if (seen.indexOf(type) >= 0) {
      throw definitionError(next.file, 'renameEvent: ' + seen.concat([type]).join(' -> ') + ' is a cycle: ' +
        'every event type must end with a name of its own', null);
    }
    seen.push(type);
  }
  return type;
};

// Check what was declared, as a whole (a rename and an upcaster may be in
// different files): no rename cycle, no upcaster or handler of a type renamed
// away, no missing version in a chain. Then the plan per stored type.
Upcasters.prototype.check = function () {
  var self = this, plans = new Map();
  this.renames.forEach(function (rename, from) { self.finalType(from); });
  this.chains.forEach(function (chain, type) {
    var rename = self.renames.get(type);
    if (rename) {
      var up = chain.values().next().value;
      throw definitionError(up.file, 'upcast(' + JSON.stringify(type) + '): ' + type + ' is renamed to ' +
        self.finalType(type) + (rename.file ? ' (' + rename.file + ')' : '') + ', so projections never see it: ' +
        'upcast ' + self.finalType(type) + ' instead (a renamed event keeps its $version)', null);
    }
    checkChain(type, chain);
    plans.set(type, new Plan(type, false, chain));
  });
  this.renames.forEach(function (rename, from) {
    var to = self.finalType(from);
    plans.set(from, new Plan(to, true, self.chains.get(to) || null));
  });
  this.projections().forEach(function (p) { self.checkHandles(p); });
  this.plans = plans;
};

// Versions of one type's upcasters follow one another: from 1 and 3 but not 2
// would leave version-2 events at version 2.
function checkChain(type, chain) {
  var versions = Array.from(chain.keys()).sort(function (a, b) { return a - b; });
  for (var i = 1; i < versions.length; i++) {
    if (versions[i] !== versions[i - 1] + 1) {
      throw definitionError(chain.get(versions[i]).file, 'the upcasters of ' + type + ' go from version ' +
        versions[i - 1] + ' and from version ' + versions[i] + ', and none from version ' + (versions[i - 1] + 1) +
        ': an event of that version would stop there', null);
    }
  }
}

// A projection that handles a type renamed away would never see it.
Upcasters.prototype.checkHandles = function (p) {
  var handled = p.kind === 'event' ? [p.eventType] : p.handlers.eventTypes();
  for (var i = 0; i < handled.length; i++) {
    var rename = this.renames.get(handled[i]);
    if (rename) {
      var to = this.finalType(handled[i]);
      throw definitionError(p.file, p.name + ': handles ' + handled[i] + ', which renameEvent renames to ' + to +
        (rename.file ? ' (' + rename.file + ')' : '') + ': projections see those events as ' + to +
        '; handle ' + to + ' instead', p.name);
    }
  }
};

// Checked once after every change; throws the first problem.
Upcasters.prototype.ready = function () {
  if (this.plans === null) this.check();
  return this;
};

// What the engine does with an event stored under `type`: a Plan, or
// undefined when nothing (the usual case: one map lookup).
Upcasters.prototype.planFor = function (type) {
  return this.ready().plans.get(type);
};

// Every upcaster and rename, for `jsproj check`, deploy and the hosts:
// {upcasters: [{eventType, from, to, file}], renames: [{from, to, file}]}.
Upcasters.prototype.describe = function () {
  var upcasters = [], renames = [];
  this.chains.forEach(function (chain) {
    chain.forEach(function (up) {
      upcasters.push({ eventType: up.eventType, from: up.from, to: up.from + 1, file: up.file });
    });
  });
  upcasters.sort(function (a, b) {
    return a.eventType < b.eventType ? -1 : a.eventType > b.eventType ? 1 : a.from - b.from;
  });
  Array.from(this.renames.keys()).sort().forEach(function (from) {
    renames.push({ from: from, to: this.renames.get(from).to, file: this.renames.get(from).file });
  }, this);
  return { upcasters: upcasters, renames: renames };
};

// What reaches a projection (its input changes when they do): the upcasters
// of the types it subscribes to and the renames into them -- every one for a
// stream projection (it sees every event of its streams) and for $any --
// and the old names of its types ({upcasters: [...], renamedFrom: [...]}).
Upcasters.prototype.reaching = function (p) {
  var all = p.kind === 'stream' || (p.kind !== 'event' && p.handlers.any !== null);
  var types = p.kind === 'event' ? [p.eventType] : p.handlers.eventTypes();
  var self = this, described = this.describe(), reached = [], renamedFrom = [];
  described.upcasters.forEach(function (up) {
    if (all || types.indexOf(up.eventType) >= 0) reached.push({ eventType: up.eventType, from: up.from, file: up.file });
  });
  described.renames.forEach(function (rename) {
    var into = types.indexOf(self.finalType(rename.from)) >= 0;
    if (into) renamedFrom.push(rename.from);
    if (all || into) reached.push({ renamed: rename.from, to: rename.to, file: rename.file });
  });
  return { upcasters: reached, renamedFrom: renamedFrom };
};

// -- upcasting an event ------------------------------------------------------

// An event's upcasting that failed, for every projection it was going to
// (errorFor names one). `record` is the event renamed, as projections would
// have seen it; `upcaster` the one at fault (null: the event's $version).
// A value projection code may have thrown is known for a Failure by identity
// (a WeakSet, isFailure): `instanceof` runs a revoked Proxy's traps (it
// throws). Objects the engine made are asked with instanceof.
var failures = new WeakSet();
function isFailure(value) {
  return value !== null && typeof value === 'object' && failures.has(value);
}

function Failure(record, meta, upcaster, reason, stack, thrown) {
  failures.add(this);
  this.record = record;
  this.stored = null;         // the event's type in the log
  this.meta = meta;
  this.upcaster = upcaster;
  this.reason = reason;
  this.stack = stack;
  this.thrown = thrown;       // {name, message} of what the upcaster threw, or null
}

Failure.prototype.errorFor = function (projection) {
  var meta = this.meta, up = this.upcaster, stored = this.stored;
  var event = meta.eventType + ' event' + (meta.eventId === null ? '' : ' ' + meta.eventId) +
    (stored !== meta.eventType ? ' (stored as ' + stored + ')' : '') + (projection ? ' for projection ' + projection : '') +
    ' (stream ' + meta.streamId + ', version ' + meta.version + ', position ' + meta.position + ')';
  var error = fail('UpcastError', (up ? 'upcaster ' + up.label + (up.file ? ' (' + up.file + ')' : '') + ' failed on ' +
    event : event + ' cannot be upcast') + ': ' + this.reason, {
    projection: projection || null, upcaster: up ? up.label : null, file: up ? up.file : null,
    eventId: meta.eventId, eventType: meta.eventType, storedType: stored, streamId: meta.streamId,
    version: meta.version, position: meta.position, error: this.thrown
  });
  if (this.stack) error.jsStack = error.stack = this.stack;
  return error;
};

// An event's own fields in a new object ("__proto__" as an own field, as JSON.parse makes it).
function shallowCopy(event) {
  var copy = {};
  for (var key in event) {
    if (!has(event, key)) continue;
    setField(copy, key, event[key]);
  }
  return copy;
}

// The schema version of an event: its $version, 1 when it has none.
function schemaVersion(event) {
  var version = has(event, VERSION_KEY) ? event[VERSION_KEY] : null;
  if (version === null) return 1;
  return typeof version === 'number' && Number.isInteger(version) && version >= 1 ? version : NaN;
}

// The record projections see in place of `record` (whose event is stored as
// a type `plan` covers), or a Failure. `this.meta` is then the meta of the
// record projections see (null when none was made: a rename alone).
// `owned`: the record is the engine's own, made for this call by the host
// interface (host.js): it becomes the record projections see, in place --
// no copy of it, and records of one shape for the handlers. Else the host's
// record is left as it is: an upcaster gets a copy of the event, and a renamed
// event is handed on in a new record as any event is (a handler gets the
// record's own fields, as the last delivery of every event does: engine.js).
Upcasters.prototype.upcast = function (record, plan, owned) {
  var stored = record.event.$type;
  var event = owned ? record.event : plan.chain !== null ? clone(record.event) : shallowCopy(record.event);
  if (plan.renamed) event.$type = plan.type;
  var seen = owned ? record : {
    position: record.position, streamId: record.streamId, streamType: record.streamType, version: record.version,
    timestamp: record.timestamp, metadata: record.metadata === undefined ? null : record.metadata, event: event
  };
  this.meta = null;
  if (plan.chain === null) return seen;
  var meta = this.meta = metaOf(seen), version = schemaVersion(event), failure = null;
  if (version !== version) {
    failure = new Failure(seen, meta, null, 'its $version is ' + JSON.stringify(event[VERSION_KEY]) + ', and a ' +
      'schema version is a whole number >= 1 (an event without $version is at version 1)', null, null);
  }
  for (var up = failure ? undefined : plan.chain.get(version); up !== undefined; up = plan.chain.get(++version)) {
    event = run(up, event, meta);
    if (event instanceof Failure) { failure = event; break; }   // (our own objects: no user code runs)
  }
  if (failure === null) {
    seen.event = event;
    return seen;
  }
  failure.record = seen;
  failure.stored = stored;
  return failure;
};

// One upcaster on one event, with the event's clock: the next version of the
// event, or a Failure. Running out of memory is a limit: the call ends.
// (What it returned is made an event with the event's clock too: a getter or
// proxy trap it left there runs as the upcaster does.)
function run(up, event, meta) {
  var fn = up.fn, type = event.$type, id = event.$id, next;
  enter(meta, null, up.label);
  try {
    var result = fn(event, meta);    // called as a plain function: `this` is undefined
    next = nextEvent(result === undefined ? event : result, type, id, up.from + 1);
  } catch (e) {
    if (isEngineError(e) && e.kind === 'EngineError') throw e;
    if (jsproj.outOfMemory(e)) throw upcasterMemoryError(up, meta);
    var thrown = describeThrown(e);
    return new Failure(null, meta, up, thrown.name + ': ' + firstLine(thrown.message),
      jsproj.userStack(thrown.stack) || thrown.name + ': ' + thrown.message, { name: thrown.name, message: thrown.message });
  } finally {
    leave();
  }
  return typeof next === 'string' ? new Failure(null, meta, up, next, null, null) : next;
}

function upcasterMemoryError(up, meta) {
  return fail('SandboxMemoryError', 'upcaster ' + up.label + ' (on ' + meta.eventType + ' event at position ' +
    meta.position + ') went past the memory limit', { projection: null, upcaster: up.label, file: up.file,
    position: meta.position, eventId: meta.eventId, eventType: meta.eventType, streamId: meta.streamId });
}

// What an upcaster returned as the event at `version`: by the value rule, with
// the event's $type and $id (put back when left out; changed, they are an
// error) first and $version in its place among the rest. A string: what is wrong.
function nextEvent(result, type, id, version) {
  if (result === null || result === DELETE || typeof result !== 'object' || Array.isArray(result)) {
    return 'it returned ' + (result === DELETE ? 'DELETE' : typeName(result)) + ', not the event: return the ' +
      'event of the next version (or change the one given and return nothing)';
  }
  var value;
  try {
    value = documentPart(result, '', 0);
    if (documentMayBeTooLarge() && JSON.stringify(value).length > MAX_SIZE) return tooLong();
  } catch (e) {
    return unstorable(e);
  }
  if (!isPlainObject(value)) return 'it returned what JSON writes as ' + typeName(value) + ', not an event';
  var keys = Object.keys(value), changed = changedIds(value, type, id);
  return changed !== null ? changed : inEventOrder(value, keys, type, id, version);
}

// What is wrong with an event (by the value rule) that changed its $type or $id, or null.
function changedIds(value, type, id) {
  if (has(value, '$type') && value.$type !== type) {
    return 'it changed $type to ' + JSON.stringify(value.$type) + ': an upcaster keeps its type ' +
      '(rename types with projections.renameEvent)';
  }
  if (has(value, '$id') && value.$id !== id) return 'it changed $id to ' + JSON.stringify(value.$id);
  return null;
}

function unstorable(e) {
  var problem = e instanceof jsproj.DocumentProblem ? e : jsproj.documentWithin(e, '');
  return 'the event it returned cannot be stored: ' + problem.reason + (problem.path ? ' at ' + problem.path : '');
}

function tooLong() {
  return 'the event it returned is longer than ' + MAX_SIZE + ' characters as JSON';
}

// An own field, as JSON.parse makes it ("__proto__" too).
function setField(event, key, value) {
  if (key === '__proto__') {
    Object.defineProperty(event, key, { value: value, enumerable: true, writable: true, configurable: true });
  } else {
    event[key] = value;
  }
}

// `value` (by the value rule already, keys in jsonb's order) as an event.
function inEventOrder(value, keys, type, id, version) {
  var event = {}, placed = false;
  event.$type = type;       // (added one by one, as JSON.parse adds a stored event's)
  if (id !== undefined) event.$id = id;
  for (var i = 0; i < keys.length; i++) {
    var key = keys[i];
    if (key === '$type' || key === '$id' || key === VERSION_KEY) continue;
    if (!placed && !isIndexKey(key) && compareKeys(VERSION_KEY, key) < 0) {
      event[VERSION_KEY] = version;
      placed = true;
    }
    setField(event, key, value[key]);
  }
  if (!placed) event[VERSION_KEY] = version;
  return event;
}

// An event given to a projection directly (the spike's applyEvent,
// createSnapshot, processEvent of one projection), upcast: {evt, meta}.
// Throws the UpcastError.
function upcastEvent(projection, evt, meta) {
  var upcasters = projection.upcasters;
  if (!upcasters || !upcasters.active()) return { evt: evt, meta: meta };
  var plan = upcasters.planFor(evt.$type);
  if (plan === undefined) return { evt: evt, meta: meta };
  var record = { position: meta.position, streamId: meta.streamId, streamType: meta.streamType, version: meta.version,
    timestamp: meta.timestamp, metadata: meta.metadata, event: evt };
  var seen = upcasters.upcast(record, plan);
  if (seen instanceof Failure) throw seen.errorFor(projection.name);
  return { evt: seen.event, meta: plan.renamed ? metaOf(seen) : meta };
}

// Each record's event as projections see it, whether or not one subscribes
// to it (`jsproj stream --upcast`): [{event} or {error}].
function upcastRecords(projector, records) {
  var upcasters = projector.upcasters.ready(), active = upcasters.active();
  return records.map(function (record) {
    if (!isPlainObject(record) || !isPlainObject(record.event) || typeof record.event.$type !== 'string') {
      throw fail('EngineError', 'upcast takes event records {position, streamId, streamType, version, timestamp, event}');
    }
    var plan = active ? upcasters.plans.get(record.event.$type) : undefined;
    if (plan === undefined) return { event: record.event };
    var seen = upcasters.upcast(record, plan);
    return seen instanceof Failure ? { error: jsproj.errorInfo(seen.errorFor(null)) } : { event: seen.event };
  });
}

jsproj.Upcasters = Upcasters;
jsproj.upcastRecords = upcastRecords;
jsproj.isUpcastFailure = isFailure;
jsproj.UpcastFailure = Failure;
jsproj.upcastEvent = upcastEvent;
