'use strict';
// What a host may ask of one apply call besides the batch (engine.js),
// checked once per call:
//
//   onError: {name: 'skip' | 'stop'} -- what happens when a projection's
//     code throws on an event. 'skip' leaves that event out for that
//     projection and goes on: its documents end as if the event had never
//     been delivered, and the error is reported with the event's position
//     (a host dead-letters it). 'stop' keeps what the events before it did
//     and gives the projection nothing more in the call. Without a policy a
//     projection that throws contributes nothing for the batch.
//   exclude: {name: [positions]} -- events not delivered to a projection
//     (ones a host already dead-lettered).
//   partitions: {name: {count, take: [indexes]}} -- a stream or view
//     projection split by its document keys into `count` partitions, of
//     which the call handles `take`: other keys are neither routed nor
//     folded (several daemons share one projection this way).

var fail = jsproj.fail, has = jsproj.has;

function checkNames(projector, what, given) {
  if (given === undefined || given === null) return null;
  if (typeof given !== 'object' || Array.isArray(given)) throw fail('EngineError', 'options.' + what + ' must be an object of projection names');
  var names = Object.keys(given);
  names.forEach(function (name) {
    if (!has(projector.projections, name)) throw jsproj.unknownProjection(name);
  });
  return names;
}

function policiesOf(projector, options) {
  var given = options && options.onError;
  var names = checkNames(projector, 'onError', given);
  if (names === null || names.length === 0) return null;
  var policies = new Map();
  names.forEach(function (name) {
    if (given[name] !== 'skip' && given[name] !== 'stop') {
      throw fail('EngineError', 'options.onError.' + name + ' must be "skip" or "stop", not ' + JSON.stringify(given[name]));
    }
    policies.set(name, given[name]);
  });
  return policies;
}

function excludedOf(projector, options) {
  var given = options && options.exclude;
  var names = checkNames(projector, 'exclude', given);
  if (names === null || names.length === 0) return null;
  var excluded = new Map();
  names.forEach(function (name) {
    if (!Array.isArray(given[name])) throw fail('EngineError', 'options.exclude.' + name + ' must be a list of positions');
    excluded.set(name, new Set(given[name]));
  });
  return excluded;
}

function partitionsOf(projector, options) {
  var given = options && options.partitions;
  var names = checkNames(projector, 'partitions', given);
  if (names === null || names.length === 0) return null;
  var partitions = new Map();
  names.forEach(function (name) {
    var p = given[name], kind = projector.projections[name].kind;
    if (kind !== 'stream' && kind !== 'view') throw fail('EngineError', name + ' is a ' + kind + ' projection: only stream and view projections have partitions');
    var count = p && p.count;
    if (!Number.isInteger(count) || count < 1 || !Array.isArray(p.take) ||
        !p.take.every(function (i) { return Number.isInteger(i) && i >= 0 && i < count; })) {
      throw fail('EngineError', 'options.partitions.' + name + ' must be {count: n >= 1, take: [indexes below n]}');
    }
    partitions.set(name, { count: count, take: new Set(p.take) });
  });
  return partitions;
}

// The partition of a document key, 0 <= partition < count: FNV-1a over the
// key's UTF-16 code units, the same in every host and every run.
function partitionOf(key, count) {
  var text = String(key), h = 0x811c9dc5;
  for (var i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % count;
}

// Whether a call with these partitions handles document `key` of `name`.
function handles(partitions, name, key) {
  if (partitions === null) return true;
  var p = partitions.get(name);
  return p === undefined || p.take.has(partitionOf(key, p.count));
}

jsproj.policiesOf = policiesOf;
jsproj.excludedOf = excludedOf;
jsproj.partitionsOf = partitionsOf;
jsproj.partitionOf = partitionOf;
jsproj.handles = handles;
