'use strict';
// Events projection code writes: KurrentDB's emit() and linkTo()
// (docs/from-kurrentdb.md#emit-and-linkto). They are recorded while a
// handler runs, per projection and source event, in the order called, and
// handed to the host with the call's changes (`emits` beside `upserts`),
// which appends them exactly once: the daemon, in the transaction that moves
// the projection's progress, under ids made of the projection, the source
// event's id and the emit's index (sql/functions/emits.sql), so that a page
// applied again or a rebuild appends nothing twice.
//
// Only a projection the call allows may emit (the daemon allows the async
// projections deployed with --emit). Anywhere else -- inline, live, at load
// time, in partitionBy, a projection without the permission -- an emit fails
// the handler, even one that catches the error: no event is dropped silently.

var clone = jsproj.clone, typeName = jsproj.typeName, isPlainObject = jsproj.isPlainObject;
var hasOwn = Object.prototype.hasOwnProperty;

var MAX_PER_EVENT = 1000;   // events one projection may emit for one event
var MAX_TEXT_PER_EVENT = 1048576;   // characters of JSON (bodies and metadata) one projection may emit for one event
var MAX_DEPTH = 16;         // events emitted for events emitted for... : a cycle of projections ends there
var LINK = '$>';            // a link event's type (KurrentDB's), its data {"link": "<sequenceNumber>@<streamId>"}

// The handler call running now: {name, meta, allowed, list, refused}; null outside one.
var running = null;
// While a policy folds a document again (engine.js takeOut), emits are not recorded a second time.
var REPLAY = { replay: true };

// The emits a call allows: a Set of projection names, or null (none).
function allowedOf(options) {
  return options && Array.isArray(options.emits) && options.emits.length ? new Set(options.emits) : null;
}

function begin(allowed, name, meta) {
  running = { name: name, meta: meta, allowed: allowed !== null && allowed.has(name), list: null, refused: null, text: 0 };
  return running;
}

function replaying() {
  running = REPLAY;
}

// A handler call that threw: nothing of it is kept.
function abort() {
  running = null;
}

// End the handler call: its emits (or null), or the refusal it caught, thrown again.
function end(call) {
  running = null;
  if (call.refused !== null) throw new TypeError(call.refused);
  return call.list;
}

function refuse(message) {
  if (running !== null && running !== REPLAY && running.refused === null) running.refused = message;
  throw new TypeError(message);
}

function text(what, value) {
  if (typeof value !== 'string' || value.trim() === '') refuse(what + ' must be a non-empty string, not ' + JSON.stringify(value));
  return value;
}

function streamOf(fn, streamId) {
  text(fn + ': the stream id', streamId);
  var reason = jsproj.badId(streamId);
  if (reason) refuse(fn + ': the stream id ' + reason);
  if (streamId.charAt(0) === '$') refuse(fn + ': ' + JSON.stringify(streamId) + ' is a system stream ($...): jsproj has none');
  return streamId;
}

// A JSON object of projection code's, copied; refused where it could not be an event's.
function objectOf(fn, what, value) {
  if (!isPlainObject(value)) refuse(fn + ': ' + what + ' must be an object, not ' + typeName(value));
  var copy = clone(value), reason = jsproj.unstorable(copy);   // (copied as JSON: a toJSON may give anything)
  if (!isPlainObject(copy)) refuse(fn + ': ' + what + ' must be an object as JSON, not ' + typeName(copy));
  if (reason) refuse(fn + ': ' + what + ' cannot be stored: ' + reason);
  if (JSON.stringify(copy).length > jsproj.MAX_DOCUMENT_SIZE) {
    refuse(fn + ': ' + what + ' is larger than ' + jsproj.MAX_DOCUMENT_SIZE + ' characters of JSON');
  }
  return copy;
}

function metadataOf(fn, metadata) {
  if (metadata === undefined || metadata === null) return {};
  var copy = objectOf(fn, 'the metadata', metadata);
  Object.keys(copy).forEach(function (key) {
    if (key.charAt(0) === '$') refuse(fn + ': metadata key ' + JSON.stringify(key) + ' starts with $: those are set by jsproj');
  });
  return copy;
}

// The emit chain's depth of the event being handled (0: appended by an application).
function depthOf(meta) {
  var depth = meta.metadata !== null && typeof meta.metadata === 'object' ? meta.metadata.$emitDepth : undefined;
  return typeof depth === 'number' && depth >= 0 ? depth : 0;
}

// Record one event to append: checked, in the running handler call.
function record(fn, streamId, eventType, data, metadata) {
  var call = running;
  if (call === REPLAY) return;
  if (call === null) refuse(fn + ' can be called only from a handler (not while the file loads, nor from partitionBy)');
  if (!call.allowed) {
    refuse(fn + ': ' + call.name + ' may not write events: only an async projection deployed with --emit ' + call.name +
      ' may (the daemon appends what it emits, exactly once: docs/from-kurrentdb.md#emit-and-linkto)');
  }
  if (typeof call.meta.eventId !== 'string') refuse(fn + ': the event has no id, which an emitted event\'s id is made of');
  var depth = depthOf(call.meta) + 1;
  if (depth > MAX_DEPTH) {
    refuse(fn + ': event ' + call.meta.eventId + ' is the end of a chain of ' + (depth - 1) + ' emitted events ' +
      '(at most ' + MAX_DEPTH + '): projections emit for each other\'s events in a cycle');
  }
  if (call.list === null) call.list = [];
  if (call.list.length >= MAX_PER_EVENT) refuse(fn + ': more than ' + MAX_PER_EVENT + ' events emitted for one event');
  call.text += JSON.stringify(data).length + JSON.stringify(metadata).length;
  if (call.text > MAX_TEXT_PER_EVENT) {
    refuse(fn + ': more than ' + MAX_TEXT_PER_EVENT + ' characters of JSON emitted for one event');
  }
  var meta = call.meta, causedBy = meta.eventId;
  var correlation = meta.metadata !== null && typeof meta.metadata === 'object' && typeof meta.metadata.$correlationId === 'string'
    ? meta.metadata.$correlationId : causedBy;
  metadata.$causedBy = causedBy;
  metadata.$correlationId = correlation;
  metadata.$projection = call.name;
  metadata.$emitDepth = depth;
  call.list.push({ streamId: streamId, eventType: eventType, data: data, metadata: metadata });
}

// KurrentDB's emit(streamId, eventType, body[, metadata]).
function emit(streamId, eventType, body, metadata) {
  if (arguments.length < 3) refuse('emit() takes (streamId, eventType, body[, metadata])');
  streamOf('emit()', streamId);
  text('emit(): the event type', eventType);
  if (eventType.length > 255) refuse('emit(): the event type is longer than 255 characters');
  if (eventType.charAt(0) === '$') refuse('emit(): the event type ' + JSON.stringify(eventType) + ' starts with $: those are jsproj\'s');
  var data = objectOf('emit()', 'the body', body);
  if (hasOwn.call(data, '$type') || hasOwn.call(data, '$id')) {
    refuse('emit(): the body has a $type or $id key: the event type and id are jsproj\'s');
  }
  record('emit()', streamId, eventType, data, metadataOf('emit()', metadata));
}

// Whether the running handler call may write events (results are written only then: kurrentdb.js).
function writing() {
  return running !== null && running !== REPLAY && running.allowed;
}

// A KurrentDB result (Result, ResultRemoved) to its result stream, checked as an emit.
function result(streamId, eventType, data) {
  streamOf('outputState()', streamId);
  var copy = objectOf('outputState()', 'the result', data);
  if (hasOwn.call(copy, '$type') || hasOwn.call(copy, '$id')) {
    refuse('outputState(): the result has a $type or $id key: an event\'s type and id are jsproj\'s');
  }
  record('outputState()', streamId, eventType, copy, { $result: true });
}

// KurrentDB's linkTo(streamId, event[, metadata]): a link event ($>) to the event's stream and sequence number.
function linkTo(streamId, event, metadata) {
  if (arguments.length < 2) refuse('linkTo() takes (streamId, event[, metadata])');
  streamOf('linkTo()', streamId);
  if (event === null || typeof event !== 'object' || typeof event.streamId !== 'string' ||
      !Number.isSafeInteger(event.sequenceNumber) || event.sequenceNumber < 0) {
    refuse('linkTo(): the event must have a streamId (text) and a sequenceNumber (a whole number from 0 to 2^53 - 1)');
  }
  streamOf('linkTo()', event.streamId);
  record('linkTo()', streamId, LINK, { link: event.sequenceNumber + '@' + event.streamId }, metadataOf('linkTo()', metadata));
}

jsproj.emits = { allowedOf: allowedOf, begin: begin, end: end, abort: abort, replaying: replaying, emit: emit, linkTo: linkTo,
  writing: writing, result: result,
  LINK: LINK, MAX_PER_EVENT: MAX_PER_EVENT, MAX_TEXT_PER_EVENT: MAX_TEXT_PER_EVENT, MAX_DEPTH: MAX_DEPTH };
