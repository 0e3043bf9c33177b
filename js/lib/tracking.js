'use strict';
// Large documents, tracked instead of copied. The value rule (documents.js)
// copies a state after every event, which costs its size: an aggregate
// holding thousands of counters would pay for all of them on every event.
// From TRACK_FROM nodes on, a handler gets a view of the document instead: a
// revocable proxy, and one for each object it reaches through it, that
// record which slots it writes. After the call only those slots become
// document values (in place), and every view is revoked, so nothing the
// handler kept can change the document later. What the handler can observe
// is what it would observe on a copy: the same values, and keys listed in
// jsonb's order as they stood when the call began, then those it added.
// (One difference: a view kept after the call throws when used, where a
// kept copy is merely stale.) Anything unusual -- a property defined with
// defineProperty, a prototype changed, an object frozen, a symbol key, a
// named property on an array, a broken rule or a bound that may break the
// size limit -- falls back to a full copy, which also gives the exact error.

var DELETE = jsproj.DELETE, step = jsproj.step;
var hasOwn = Object.prototype.hasOwnProperty, isArray = Array.isArray;

// Nodes (object keys and array items) from which a document is tracked.
var TRACK_FROM = 512;

// A document's size, as the engine keeps it between deliveries: an upper
// bound of its JSON text and its nodes (both only grow while it is tracked;
// a copy makes them exact again).
function Size(bound, nodes) {
  this.bound = bound;
  this.nodes = nodes;
}

// The size of the document the last copy made, if it is large.
function sizeOfLast() {
  if (jsproj.documentNodes() < TRACK_FROM) return null;
  var m = jsproj.documentMeasured();
  return new Size(m[0], m[1]);
}

// One target object reached in a call: where it is, and what was written.
function Place(target, depth) {
  this.target = target;
  this.depth = depth;
  this.length = isArray(target) ? target.length : -1;
  this.written = [];          // keys written or deleted, in order, once each
  this.added = null;          // keys that did not exist when written, in the order they were (last) added
  this.order = null;          // the keys as listed, until the next write
}

// A call's views. Usually few objects are reached in one call: plain lists
// are faster to make and search than maps, which come when there are more.
var FEW = 8;
function Tracker(document) {
  this.places = [];
  this.views = [];            // the view of places[i]
  this.byTarget = null;       // target -> index, once there are more than FEW
  this.byView = null;         // view -> index, likewise
  this.revokers = [];
  this.adopted = null;        // objects the handler put in, its own
  this.unusual = false;
  this.root = document;
  this.view = this.wrap(document, 0);
}

Tracker.prototype.find = function (list, map, item) {
  if (map !== null) {
    var at = map.get(item);
    return at === undefined ? -1 : at;
  }
  return list.indexOf(item);
};

Tracker.prototype.wrap = function (target, depth) {
  var known = this.byTarget !== null ? this.find(null, this.byTarget, target) : -1;
  if (this.byTarget === null) {
    for (var i = 0; i < this.places.length; i++) if (this.places[i].target === target) { known = i; break; }
  }
  if (known >= 0) return this.views[known];
  var place = new Place(target, depth);
  var pair = Proxy.revocable(target, new Traps(this, place));
  this.places.push(place);
  this.views.push(pair.proxy);
  this.revokers.push(pair.revoke);
  if (this.byTarget === null && this.places.length > FEW) {
    this.byTarget = new Map();
    this.byView = new Map();
    for (var j = 0; j < this.places.length; j++) {
      this.byTarget.set(this.places[j].target, j);
      this.byView.set(this.views[j], j);
    }
  } else if (this.byTarget !== null) {
    this.byTarget.set(target, this.places.length - 1);
    this.byView.set(pair.proxy, this.places.length - 1);
  }
  return pair.proxy;
};

// An object the handler hands in: the target behind one of this call's
// views, or its own object (adopted: made a document value after the call).
Tracker.prototype.inward = function (value) {
  if (value === null || typeof value !== 'object') return value;
  var at = this.find(this.views, this.byView, value);
  if (at >= 0) return this.places[at].target;
  if (this.adopted === null) this.adopted = new Set();
  this.adopted.add(value);
  return value;
};

// A value read from the document: objects of the document come out as views.
Tracker.prototype.outward = function (place, value) {
  if (value === null || typeof value !== 'object' || (this.adopted !== null && this.adopted.has(value))) return value;
  return this.wrap(value, place.depth + 1);
};

Tracker.prototype.write = function (place, key) {
  place.order = null;
  if (typeof key === 'symbol' || key === '__proto__' || (place.length >= 0 && key !== 'length' && !jsproj.isIndexKey(key))) {
    this.unusual = true;
  }
  if (!hasOwn.call(place.target, key)) {
    if (place.added === null) place.added = [];
    var at = place.added.indexOf(key);
    if (at >= 0) place.added.splice(at, 1);
    place.added.push(key);
  }
  if (place.written.indexOf(key) < 0) place.written.push(key);
};

// The traps of one place's view (a prototype, not closures: one object per view).
function Traps(tracker, place) {
  this.tracker = tracker;
  this.place = place;
}
Traps.prototype.get = function (target, key) {
  var value = target[key];
  return hasOwn.call(target, key) ? this.tracker.outward(this.place, value) : value;
};
Traps.prototype.set = function (target, key, value) {
  this.tracker.write(this.place, key);
  return Reflect.set(target, key, this.tracker.inward(value));
};
Traps.prototype.deleteProperty = function (target, key) {
  this.tracker.write(this.place, key);
  return Reflect.deleteProperty(target, key);
};
Traps.prototype.defineProperty = function (target, key, descriptor) {
  this.tracker.write(this.place, key);
  this.tracker.unusual = true;
  if ('value' in descriptor) descriptor.value = this.tracker.inward(descriptor.value);
  return Reflect.defineProperty(target, key, descriptor);
};
Traps.prototype.getOwnPropertyDescriptor = function (target, key) {
  var descriptor = Reflect.getOwnPropertyDescriptor(target, key);
  if (descriptor && 'value' in descriptor && descriptor.configurable) {
    descriptor.value = this.tracker.outward(this.place, descriptor.value);
  }
  return descriptor;
};
Traps.prototype.ownKeys = function (target) {
  var place = this.place;
  if (place.order === null) place.order = listedKeys(target, place);
  return place.order;
};
Traps.prototype.setPrototypeOf = function (target, proto) {
  this.tracker.unusual = true;
  return Reflect.setPrototypeOf(target, proto);
};
Traps.prototype.preventExtensions = function (target) {
  this.tracker.unusual = true;
  return Reflect.preventExtensions(target);
};

// The keys as a copy would list them: array indexes in order, then the keys
// the call began with in jsonb's order, then those it added, then symbols.
function listedKeys(target, place) {
  var own = Reflect.ownKeys(target);
  var indexes = [], named = [], symbols = [];
  var added = new Set(place.added || []);
  for (var i = 0; i < own.length; i++) {
    var key = own[i];
    if (typeof key === 'symbol') symbols.push(key);
    else if (jsproj.isIndexKey(key)) indexes.push(key);
    else if (!added.has(key)) named.push(key);
  }
  var tail = (place.added || []).filter(function (key) {
    return typeof key === 'string' && !jsproj.isIndexKey(key) && hasOwn.call(target, key);
  });
  var inOrder = 1;            // usually they are in order already
  while (inOrder < named.length && jsproj.compareKeys(named[inOrder - 1], named[inOrder]) < 0) inOrder++;
  return indexes.concat(inOrder >= named.length ? named : jsproj.sortKeys(named, inOrder), tail, symbols);
}

// After the call: the written slots become document values, in place.
// Returns the document's new size, or null when a full copy must decide.
Tracker.prototype.finish = function (size) {
  if (this.unusual) return null;
  var bound = size.bound, count = size.nodes;
  for (var p = 0; p < this.places.length; p++) {
    var place = this.places[p], target = place.target;
    if (place.written.length === 0) continue;
    if (place.length >= 0) fillHoles(place);
    for (var w = 0; w < place.written.length; w++) {
      var key = place.written[w];
      if (place.length >= 0 && key === 'length') continue;
      if (!hasOwn.call(target, key)) {
        if (place.length >= 0 && jsproj.isIndexKey(key) && Number(key) < target.length) target[key] = null;
        continue;
      }
      if (jsproj.unstorableKey(key)) return null;
      var value = jsproj.documentPart(target[key], key, place.depth + 1);
      var m = jsproj.documentMeasured();
      bound += m[0] + 6 * key.length + 4;
      count += m[1] + 1;
      if (value === undefined) {
        if (place.length >= 0) target[key] = null;
        else delete target[key];
      } else {
        target[key] = value;          // (even when ===: -0 is 0)
      }
    }
  }
  return bound > jsproj.MAX_DOCUMENT_SIZE ? null : new Size(bound, count);
};

// Array items that became holes (a longer length, a deleted item) are null.
function fillHoles(place) {
  var target = place.target;
  var from = Math.min(place.length, target.length);
  for (var w = 0; w < place.written.length; w++) {
    var key = place.written[w];
    if (jsproj.isIndexKey(key)) from = Math.min(from, Number(key));
  }
  for (var i = from; i < target.length; i++) if (!(i in target)) target[i] = null;
}

Tracker.prototype.revoke = function () {
  for (var i = 0; i < this.revokers.length; i++) this.revokers[i]();
};

// One event folded into a large document (its size known): the handler gets
// a view; afterwards the document, its written slots made document values,
// or a full copy when that must decide. Returns {document, size} or DELETE.
function foldTracked(projection, document, size, evt, meta, key) {
  if (jsproj.deletedBy(projection, evt)) return DELETE;
  var tracker = new Tracker(document);
  jsproj.enter(meta, projection.name);
  try {
    var next = step(projection.handlers, tracker.view, evt, meta);
    if (next === DELETE) return DELETE;
    var kept = next === tracker.view ? finishOrNull(tracker, size) : null;
    var walked = tracker.places.length > WALKED;
    if (kept !== null) return { document: document, size: kept, walked: walked };
    var copy = jsproj.toDocument(next === tracker.view ? document : next, projection.name, key, meta);
    return { document: copy, size: sizeOfLast(), walked: walked };
  } finally {
    tracker.revoke();
    jsproj.leave();
  }
}

// A call that reached more objects than this walked the document: making a
// view of each costs more than a copy, so the engine copies that document
// for the rest of the batch.
var WALKED = 64;

// The tracked finish, or null to fall back to a copy (which gives the exact
// error when a rule is broken: the slots already made document values do not
// change what a copy finds).
function finishOrNull(tracker, size) {
  try {
    return tracker.finish(size);
  } catch (e) {
    return null;
  }
}

jsproj.TRACK_FROM = TRACK_FROM;
jsproj.foldTracked = foldTracked;
jsproj.documentSizeOfLast = sizeOfLast;
