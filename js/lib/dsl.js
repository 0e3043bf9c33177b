'use strict';
// The projection kinds behind the DSL: stream, event and aggregate from the
// original spike, plus the multi-stream view. A handler folds one event into
// one document's state; nothing here touches storage or routing.

var fail = jsproj.fail, has = jsproj.has, clone = jsproj.clone, typeName = jsproj.typeName;
var badId = jsproj.badId, isPlainObject = jsproj.isPlainObject;

var NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// pge_projections_<name> must fit PostgreSQL's 63-byte identifiers.
var MAX_NAME_LENGTH = 47;
var LIFECYCLES = ['inline', 'async', 'live'];
// $deleted: a stream's tombstone (docs/lifecycle.md#deleting-a-stream); $any never sees it.
var SPECIAL_KEYS = ['$init', '$any', '$deleted'];
var DELETED = '$deleted';

// Returned by a handler to delete its document. One value every file of an engine gets, frozen
// whole here: an engine made in a context locked down already (another store's in PLV8 and
// PL/JS, a renewed sandbox, a lockdown taken up again) has no lockdown to harden it, and a
// function's `prototype` object left open was a way from one projection to another (an
// adversarial review: tests/engine/test_lockdown_stopped.py). Its toString is a method: no
// `prototype` at all.
var DELETE = Object.freeze({ toString: Object.freeze({ toString() { return 'projections.DELETE'; } }.toString) });

function definitionError(file, message, projection) {
  return fail('ProjectionDefinitionError', (file ? file + ': ' : '') + message,
    { file: file || null, projection: projection || null });
}

function checkName(name, file) {
  if (typeof name !== 'string' || !NAME.test(name) || name.length > MAX_NAME_LENGTH) {
    throw definitionError(file, 'projection name ' + JSON.stringify(name) + ' is not a safe identifier: ' +
      'use letters, digits and _, start with a letter or _, at most ' + MAX_NAME_LENGTH + ' characters');
  }
  return name;
}

function checkType(value, what, name, file) {
  var reason = badId(value);
  if (reason) throw definitionError(file, what + ' of ' + name + ' ' + reason, name);
  return value;
}

// The handlers of a definition object: $init, $any and one per event type.
function Handlers(name, definition, file) {
  if (!isPlainObject(definition)) {
    throw definitionError(file, name + ': .by() needs an object mapping event types to handlers, not ' + typeName(definition), name);
  }
  this.init = null;
  this.any = null;
  this.byType = new Map();
  var self = this;
  Object.keys(definition).forEach(function (key) {
    var handler = definition[key];
    if (key.charAt(0) === '$' && SPECIAL_KEYS.indexOf(key) < 0) {
      throw definitionError(file, name + ': unknown special key ' + key + ' (known: ' + SPECIAL_KEYS.join(', ') + ')', name);
    }
    if (typeof handler !== 'function') {
      throw definitionError(file, name + ': the handler for ' + key + ' is ' + typeName(handler) + ', not a function', name);
    }
    if (key === '$init') self.init = handler;
    else if (key === '$any') self.any = handler;
    else self.byType.set(key, handler);
  });
}

Handlers.prototype.eventTypes = function () {
  return Array.from(this.byType.keys());
};

Handlers.prototype.handlerFor = function (eventType) {
  // ($-types are jsproj's -- a tombstone, a link: emits.js -- and reach only a handler of their own type.)
  if (eventType.charAt(0) === '$') return this.byType.get(eventType) || null;
  return this.byType.get(eventType) || this.any;
};

Handlers.prototype.initial = function () {
  var init = this.init;       // called as a plain function: `this` is not the handlers
  var state = init ? init() : {};
  if (state === undefined || state === null || state === DELETE) {
    throw new TypeError('$init must return the initial state, not ' + (state === DELETE ? 'DELETE' : String(state)));
  }
  // A copy, so that an $init returning a shared object cannot tie documents together.
  return clone(state);
};

// One event folded into one document. `state` null/undefined/DELETE means the
// document does not exist; the result is the new state (to become a document
// by the value rule, documents.js) or DELETE.
function step(handlers, state, evt, meta) {
  if (state === null || state === undefined || state === DELETE) state = handlers.initial();
  var handler = handlers.handlerFor(evt.$type);
  if (!handler) return state;
  var result = handler(state, evt, meta);
  if (result === undefined) return state;
  if (result === null) {
    throw new TypeError('the handler for ' + evt.$type + ' returned null: return projections.DELETE to delete ' +
      'the document, a value to replace the state, or nothing to keep the mutated state');
  }
  return result;
}

function checkEvent(evt) {
  if (!isPlainObject(evt)) throw fail('InvalidEventError', 'an event is a JSON object, not ' + typeName(evt));
  if (typeof evt.$type !== 'string' || evt.$type === '') {
    throw fail('InvalidEventError', 'Missing $type in event ' + JSON.stringify(evt));
  }
}

// The read-only metadata handlers get as their third argument.
function metaOf(record) {
  return Object.freeze({
    streamId: record.streamId === undefined ? null : record.streamId,
    streamType: record.streamType === undefined ? null : record.streamType,
    version: record.version === undefined ? null : record.version,
    position: record.position === undefined ? null : record.position,
    timestamp: record.timestamp === undefined ? null : record.timestamp,
    eventId: record.event.$id === undefined ? null : record.event.$id,
    eventType: record.event.$type,
    metadata: record.metadata === undefined || record.metadata === null ? null : jsproj.freezeDeep(record.metadata)
  });
}

// A document key given by projection code: a non-empty string (numbers are
// turned into strings).
function documentKey(value, what) {
  if (typeof value === 'number' && isFinite(value)) value = String(value);
  var reason = badId(value);
  if (reason) throw new TypeError(what + ' ' + reason);
  return value;
}

// What every projection object shares: name, kind, lifecycle and its chaining.
function Projection(kind, name, file, store) {
  this.name = checkName(name, file);
  this.kind = kind;
  this.lifecycle = 'inline';
  this.indexes = [];
  this.revision = 1;  // .version(n): not `version`, which is the method
  this.store = store;
  Object.defineProperty(this, 'file', { value: file || null, writable: true, enumerable: false });
}

// A field the stored documents are indexed by, for queries by field: a
// dotted path of names (the rule of src/jsproj/projections/views.py's field_path).
var FIELD = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,15}$/;
var MAX_FIELD_LENGTH = 200;

Projection.prototype.index = function (field) {
  if (this.kind === 'aggregate') {
    throw definitionError(this.file, this.name + ': .index() is for projections of many documents; ' +
      'an aggregate has one', this.name);
  }
  if (typeof field !== 'string' || !FIELD.test(field) || field.length > MAX_FIELD_LENGTH) {
    throw definitionError(this.file, this.name + ': .index() takes a field, a dotted path of names ' +
      '(letters, digits and _, not starting with a digit), not ' + JSON.stringify(field), this.name);
  }
  if (this.indexes.indexOf(field) < 0) this.indexes.push(field);
  return this;
};

// A version of the projection's definition (docs/deploy.md#versions): deploying a
// new version of an async projection builds it beside the current one, which
// serves reads until the new one is swapped in; the old table is kept until
// a deploy with --prune.
var MAX_VERSION = 999999;

Projection.prototype.version = function (number) {
  if (typeof number !== 'number' || !Number.isInteger(number) || number < 1 || number > MAX_VERSION) {
    throw definitionError(this.file, this.name + ': .version() takes a whole number from 1 to ' + MAX_VERSION +
      ', not ' + (typeof number === 'number' ? String(number) : JSON.stringify(number)), this.name);
  }
  this.revision = number;
  return this;
};

Projection.prototype.inline = function () { this.lifecycle = 'inline'; return this; };
Projection.prototype.async = function () { this.lifecycle = 'async'; return this; };
Projection.prototype.live = function () { this.lifecycle = 'live'; return this; };

var NO_EVENT = Object.freeze({ eventId: null, eventType: null, position: null });

// One event folded into a state with the clock of that event, the result as a
// document (or DELETE): what every host does for each delivery.
// Whether a stream's tombstone deletes the projection's document as it is: a stream projection's that has no
// $deleted handler to say what it does instead (docs/lifecycle.md#deleting-a-stream).
function deletedBy(projection, evt) {
  return evt.$type === DELETED && projection.kind === 'stream' && !projection.handlers.byType.has(DELETED);
}

function fold(projection, state, evt, meta, key) {
  if (deletedBy(projection, evt)) return DELETE;
  jsproj.enter(meta, projection.name);
  try {
    var next = step(projection.handlers, state, evt, meta);
    return next === DELETE ? DELETE : jsproj.toDocument(next, projection.name, key, meta);
  } finally {
    jsproj.leave();
  }
}

// An event given to one projection directly, checked and as projections see
// it (through the projector's upcasters: upcast.js): {evt, meta}.
function seenEvent(projection, evt, meta) {
  checkEvent(evt);
  return jsproj.upcastEvent(projection, evt, meta || metaOf({ event: evt }));
}

// Original API for folding projections: apply one event, or build from a list.
// The state given may be changed in place; the result is the new document.
function applyEvent(state, evt, meta) {
  var seen = seenEvent(this, evt, meta);
  var next = fold(this, state, seen.evt, seen.meta, null);
  return next === DELETE ? null : next;
}

function createSnapshot(events) {
  var state = null;
  for (var i = 0; i < events.length; i++) {
    var seen = seenEvent(this, events[i]);
    state = fold(this, state, seen.evt, seen.meta, null);
  }
  if (state === null) state = jsproj.toDocument(this.handlers.initial(), this.name, null, NO_EVENT);
  return state === DELETE ? null : state;
}

// The store's document is copied first: a handler that throws leaves it as it was.
function storeFold(projection, key, evt, meta) {
  var next = projection.applyEvent(clone(projection.store.find(key)), evt, meta);
  if (next === null) projection.store.remove(key);
  else projection.store.update(key, next);
  return next;
}

// projectStream(type).named(name).by(definition): one document per stream.
function StreamProjection(streamType, name, definition, file, store) {
  Projection.call(this, 'stream', name, file, store);
  this.streamType = checkType(streamType, 'the stream type', name, file);
  this.definition = definition;
  this.handlers = new Handlers(name, definition, file);
}
StreamProjection.prototype = Object.create(Projection.prototype);
StreamProjection.prototype.constructor = StreamProjection;
StreamProjection.prototype.applyEvent = applyEvent;
StreamProjection.prototype.createSnapshot = createSnapshot;
StreamProjection.prototype.processEvent = function (id, evt) {
  return storeFold(this, String(id), evt, metaOf({ streamId: String(id), streamType: this.streamType, event: evt }));
};

// aggregate(name).by(definition): one document across all streams.
function AggregateProjection(name, definition, file, store) {
  Projection.call(this, 'aggregate', name, file, store);
  this.definition = definition;
  this.handlers = new Handlers(name, definition, file);
}
AggregateProjection.prototype = Object.create(Projection.prototype);
AggregateProjection.prototype.constructor = AggregateProjection;
AggregateProjection.prototype.applyEvent = applyEvent;
AggregateProjection.prototype.createSnapshot = createSnapshot;
AggregateProjection.prototype.processEvent = function (id, evt) {
  return storeFold(this, this.name, evt, metaOf({ streamId: id === undefined ? null : String(id), event: evt }));
};

// projectView(name).identifiedBy(fn).by(definition): documents keyed by a
// function of the event -- one key, several (fan-out) or none (skip).
function ViewProjection(name, identify, definition, file, store) {
  Projection.call(this, 'view', name, file, store);
  if (typeof identify !== 'function') {
    throw definitionError(file, name + ': identifiedBy() needs a function of the event, not ' + typeName(identify), name);
  }
  this.identify = identify;
  this.definition = definition;
  this.handlers = new Handlers(name, definition, file);
}
ViewProjection.prototype = Object.create(Projection.prototype);
ViewProjection.prototype.constructor = ViewProjection;
ViewProjection.prototype.applyEvent = applyEvent;
ViewProjection.prototype.createSnapshot = createSnapshot;
ViewProjection.prototype.keysFor = function (evt, meta) {
  var identify = this.identify;       // called as a plain function: `this` is not the projection
  var value = identify(evt, meta);
  if (value === undefined || value === null) return [];
  var list = Array.isArray(value) ? value : [value];
  var keys = [];
  for (var i = 0; i < list.length; i++) {
    if (list[i] === undefined || list[i] === null) continue;
    var key = documentKey(list[i], 'identifiedBy returned a key that');
    if (keys.indexOf(key) < 0) keys.push(key);
  }
  return keys;
};
ViewProjection.prototype.processEvent = function (id, evt) {
  var seen = seenEvent(this, evt, metaOf({ streamId: id === undefined ? null : String(id), event: evt }));
  var meta = seen.meta, self = this;
  evt = seen.evt;
  jsproj.enter(meta, this.name);
  var keys;
  try { keys = this.keysFor(jsproj.frozenCopy(evt), meta); } finally { jsproj.leave(); }
  return keys.map(function (key) {
    var next = fold(self, clone(self.store.find(key)), jsproj.clone(evt), meta, null);
    if (next === DELETE) self.store.remove(key);
    else self.store.update(key, next);
    return next === DELETE ? null : next;
  });
};

// projectEvent(type).named(name).by(transform): one document per transformed
// event, keyed by the view's $id (else the event's $id).
function EventProjection(eventType, name, transform, file, store) {
  Projection.call(this, 'event', name, file, store);
  this.eventType = checkType(eventType, 'the event type', name, file);
  if (typeof transform !== 'function') {
    throw definitionError(file, name + ': projectEvent(...).by() needs a transform function, not ' + typeName(transform), name);
  }
  this.transform = transform;
}
EventProjection.prototype = Object.create(Projection.prototype);
EventProjection.prototype.constructor = EventProjection;
// The view the transform makes of an event: a view object, or null when it makes none.
EventProjection.prototype.transformed = function (evt, meta) {
  var transform = this.transform;     // called as a plain function: `this` is not the projection
  var view = transform(evt, meta);
  if (view === undefined || view === null) return null;
  if (view === DELETE || typeof view !== 'object' || Array.isArray(view)) {
    throw new TypeError('the transform must return a view object (or nothing), not ' + (view === DELETE ? 'DELETE' : typeName(view)));
  }
  return view;
};
// The document an event becomes, as {key, view} (the view by the value rule,
// keyed by its $id, else the event's $id, else fallbackKey), or null when none.
EventProjection.prototype.project = function (evt, meta, fallbackKey) {
  jsproj.enter(meta, this.name);
  try {
    var view = this.transformed(evt, meta);
    if (view === null) return null;
    var fallback = meta.eventId !== null ? meta.eventId : fallbackKey;
    var document = jsproj.toDocument(view, this.name, fallback === undefined ? null : String(fallback), meta);
    var key = has(document, '$id') && document.$id !== null ? document.$id : fallback;
    return { key: documentKey(key, 'the view key ($id)'), view: document };
  } finally {
    jsproj.leave();
  }
};
// Called directly (the spike's API), the projection is already bound to its
// event type: an event without $type is taken as one of that type (the
// original accepted it); the caller's object is left as it is.
EventProjection.prototype.processEvent = function (id, evt) {
  if (isPlainObject(evt) && evt.$type === undefined) evt = Object.assign({ $type: this.eventType }, evt);
  var seen = seenEvent(this, evt, metaOf({ streamId: id === undefined ? null : String(id), event: evt }));
  var out = this.project(seen.evt, seen.meta, id);
  if (out) this.store.update(out.key, out.view);
  return out ? out.view : null;
};

jsproj.DELETE = DELETE;
jsproj.LIFECYCLES = LIFECYCLES;
jsproj.definitionError = definitionError;
jsproj.step = step;
jsproj.fold = fold;
jsproj.deletedBy = deletedBy;
jsproj.checkEvent = checkEvent;
jsproj.metaOf = metaOf;
jsproj.StreamProjection = StreamProjection;
jsproj.AggregateProjection = AggregateProjection;
jsproj.ViewProjection = ViewProjection;
jsproj.EventProjection = EventProjection;
