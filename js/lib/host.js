'use strict';
// The text interface for hosts that reach the engine across a bridge
// (Python's V8 worker, PLV8, plpython3u): JSON text in, JSON text out, one
// call per batch. Every answer is {"ok": result, "logs": [...]} or
// {"error": {kind, message, ...}, "logs": [...]}.

var projector = null;
// The batch the last route call parsed, so that apply can name it instead of
// sending and parsing the same events again.
var routed = { id: null, events: null };

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

function answerError(error) {
  var logs = jsproj.drainLogs();
  var envelope = { error: jsproj.errorInfo(error) };
  if (logs.length) envelope.logs = logs;
  return JSON.stringify(envelope);
}

// The changed document that cannot become JSON, named, when the whole result cannot.
function unserializable(result, cause) {
  var names = Object.keys(result.changes);
  for (var i = 0; i < names.length; i++) {
    var upserts = result.changes[names[i]].upserts;
    var ids = Object.keys(upserts);
    for (var j = 0; j < ids.length; j++) {
      try { JSON.stringify(upserts[ids[j]]); } catch (e) {
        return jsproj.fail('DocumentError', 'projection ' + names[i] + ' produced document ' + JSON.stringify(ids[j]) +
          ' that is not JSON: ' + jsproj.describeThrown(e).message, { projection: names[i], documentId: ids[j] });
      }
    }
  }
  return cause;
}

function entry(fn) {
  return function (text) {
    var result;
    try {
      result = fn(text);
    } catch (e) {
      return answerError(e);
    }
    try {
      return answer(result);
    } catch (e) {
      return answerError(result && result.changes ? unserializable(result, e) : e);
    }
  };
}

jsproj.host = {
  // [{file, source}] -> the description of every projection.
  load: entry(function (text) {
    var next = jsproj.createProjector();
    jsproj.loadInto(next, JSON.parse(text));
    projector = next;
    return jsproj.describe(projector);
  }),
  // {events: [records], batch: id, options} -> {name: [ids]}; keeps the events as batch `id`.
  route: entry(function (text) {
    var batch = JSON.parse(text);
    routed = { id: null, events: null };
    var keys = jsproj.route(loaded(), batch.events, batch.options);
    if (batch.batch !== undefined) routed = { id: batch.batch, events: batch.events };
    return keys;
  }),
  // {events: [records] | batch: id, documents: {name: {id: doc}}, options} -> {changes, errors}
  apply: entry(function (text) {
    var batch = JSON.parse(text);
    var events = batch.events;
    if (events === undefined) {
      if (routed.id === null || routed.id !== batch.batch) {
        throw jsproj.fail('StaleBatchError', 'batch ' + batch.batch + ' is not the last routed batch: send the events');
      }
      events = routed.events;
    }
    routed = { id: null, events: null };
    var result = jsproj.apply(loaded(), events, batch.documents, batch.options);
    result.errors = result.errors.map(jsproj.errorInfo);
    return result;
  }),
  // {text, options} -> [records]
  normalize: entry(function (text) {
    var request = JSON.parse(text);
    return jsproj.normalize(jsproj.parseEvents(request.text), request.options);
  }),
  // What was running when a call was stopped: {file, projection, position, eventId, ...}.
  current: entry(function () {
    var record = jsproj.current.record;
    return {
      file: jsproj.current.file,
      projection: jsproj.current.projection,
      position: record ? record.position : null,
      streamId: record ? record.streamId : null,
      eventId: record && record.event ? record.event.$id : null,
      eventType: record && record.event ? record.event.$type : null
    };
  })
};
