'use strict';
// Events files and append messages: parse the text, check
// every message and event, and turn them into event records with stream
// ids, versions, global positions and timestamps assigned.

var fail = jsproj.fail, has = jsproj.has, clone = jsproj.clone, typeName = jsproj.typeName;
// The real clock: the engine's own (the global Date is the event's clock in sandboxes).
var RealDate = jsproj.RealDate;
var isPlainObject = jsproj.isPlainObject, badId = jsproj.badId, unstorable = jsproj.unstorable, isUuid = jsproj.isUuid;

var MESSAGE_KEYS = ['id', 'type', 'data', 'expected_version', 'metadata', 'timestamp'];
// Message timestamps: ISO 8601 date-times with a zone (Z or +hh:mm), the same rule as pge_append.
var ISO_8601 = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

// Its fields in range: years 0001-9999, hours 00-23, zones up to 15:59, no leap second (pge_append's rule).
var ISO_FIELDS = /^(?!0000)\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ](?:[01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?(Z|[+-](0\d|1[0-5]):[0-5]\d)$/;
// The largest expected_version: 2^53 - 1, held exactly here and a bigint in pge_append.
var MAX_VERSION = 9007199254740991;
// The moments a timestamp may be, in UTC: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z, what a date-time
// of Python (and of most languages) holds; a zone may take a time of year 1 or 9999 past them (pge_append's rule).
var EARLIEST = -62135596800000, LATEST = 253402300799999;

// Milliseconds since the epoch of an ISO 8601 timestamp; NaN if it is not one
// (the shape), null if a field is out of range or the day does not exist
// (Date.parse would roll Feb 30 over).
function isoMilliseconds(value) {
  if (typeof value !== 'string' || !ISO_8601.test(value)) return NaN;
  if (!ISO_FIELDS.test(value)) return null;
  var day = value.slice(0, 10).split('-').map(Number);
  var check = new RealDate(0);
  check.setUTCFullYear(day[0], day[1] - 1, day[2]);  // not RealDate.UTC: it reads years 0-99 as 1900-1999
  if (check.getUTCFullYear() !== day[0] || check.getUTCMonth() !== day[1] - 1 || check.getUTCDate() !== day[2]) return null;
  return RealDate.parse(value.replace(' ', 'T'));
}

function lineAt(text, index) {
  var line = 1;
  for (var i = 0; i < index && i < text.length; i++) if (text.charCodeAt(i) === 10) line += 1;
  return line;
}

function malformed(text, error, offsetLine) {
  var message = describeJsonError(error);
  var match = /position (\d+)/.exec(message);
  var line = match ? lineAt(text, Number(match[1])) + (offsetLine || 1) - 1 : offsetLine || null;
  return fail('EventsFileError', (line ? 'line ' + line + ': ' : '') + 'not valid JSON (' + message + ')', { line: line });
}

function describeJsonError(error) {
  return error && error.message ? String(error.message) : String(error);
}

// The append messages in an events file: a JSON array of messages, one JSON
// message, or JSON Lines (one message per line). `lines` gives each
// message's line number where the format has one.
function parseEvents(text) {
  if (typeof text !== 'string') throw fail('EventsFileError', 'events must be JSON text, not ' + typeName(text), { line: null });
  if (text.charCodeAt(0) === 0xFEFF) text = text.slice(1);
  var start = text.search(/\S/);
  if (start < 0) return { messages: [], lines: [] };
  if (text.charAt(start) === '[') {
    var messages;
    try { messages = JSON.parse(text); } catch (e) { throw malformed(text, e); }
    return { messages: messages, lines: null };
  }
  if (text.charAt(start) === '{') {
    try { return { messages: [JSON.parse(text)], lines: [lineAt(text, start)] }; } catch (e) { /* JSON Lines */ }
  }
  var parsed = { messages: [], lines: [] };
  var rows = text.split('\n');
  for (var i = 0; i < rows.length; i++) {
    if (!/\S/.test(rows[i])) continue;
    try { parsed.messages.push(JSON.parse(rows[i])); } catch (e) { throw malformed(rows[i], e, i + 1); }
    parsed.lines.push(i + 1);
  }
  return parsed;
}

// Deterministic ids for simulation: UUIDs of version 8 (custom), numbered.
function numberedId(kind, n) {
  var hex = n.toString(16);
  return '00000000-0000-8000-' + kind + '-' + '000000000000'.slice(hex.length) + hex;
}

function invalid(where, message, details) {
  var extra = { messageNumber: where.message, eventNumber: where.event || null, line: where.line };
  if (details) Object.keys(details).forEach(function (k) { extra[k] = details[k]; });
  var at = 'message ' + where.message + (where.line ? ' (line ' + where.line + ')' : '') +
    (where.event ? ', event ' + where.event : '');
  return fail('InvalidEventError', at + ': ' + message, extra);
}

// Check parsed messages and turn them into event records. Options: `now`
// (ISO timestamp for messages without one), `position` (the last position
// already used), `streams` ({id: {type, version}} that already exist).
// A stream's tombstone (docs/lifecycle.md#deleting-a-stream), as pge_append_message says it: a $deleted event goes
// on a stream that is there and not deleted; after it, only a message with the tombstone's version as its
// expected_version (checked before: a ConcurrencyError otherwise) re-creates the stream.
var DELETED = '$deleted';

function tombstoneRules(where, id, stream, tombstone, expected) {
  var fields = { streamId: id, messageNumber: where.message };
  if (tombstone && !stream) {
    throw fail('UnknownStreamError', 'message ' + where.message + ': stream ' + JSON.stringify(id) +
      ' does not exist: there is nothing to delete', fields);
  }
  if (tombstone && stream.deleted) {
    throw fail('StreamDeletedError', 'message ' + where.message + ': stream ' + JSON.stringify(id) + ' is deleted already',
      Object.assign({ version: stream.version }, fields));
  }
  if (!tombstone && expected === null) {
    throw fail('StreamDeletedError', 'message ' + where.message + ': stream ' + JSON.stringify(id) + ' was deleted (at version ' +
      stream.version + '): append with expected_version ' + stream.version + ' to re-create it',
      Object.assign({ version: stream.version }, fields));
  }
}

function normalize(parsed, options) {
  options = options || {};
  var messages = parsed.messages, lines = parsed.lines;
  if (!Array.isArray(messages)) {
    throw fail('EventsFileError', 'an events file is a JSON array of append messages ' +
      '({"id", "type", "data": [events]}) or JSON Lines with one message per line; this one holds ' + typeName(messages), { line: null });
  }
  var now = options.now || new RealDate().toISOString();
  var position = options.position || 0;
  var streams = new Map();
  if (options.streams) Object.keys(options.streams).forEach(function (id) { streams.set(id, clone(options.streams[id])); });
  var eventIds = new Set();
  var streamCount = 0, eventCount = 0;
  var records = [];

  for (var m = 0; m < messages.length; m++) {
    var message = messages[m];
    var where = { message: m + 1, line: lines ? lines[m] : null, event: null };
    if (!isPlainObject(message)) {
      throw invalid(where, 'an append message is an object like {"id": ..., "type": ..., "data": [...]}, not ' + typeName(message));
    }
    Object.keys(message).forEach(function (key) {
      if (MESSAGE_KEYS.indexOf(key) < 0) {
        throw invalid(where, 'unknown field ' + JSON.stringify(key) + ' (an append message has ' + MESSAGE_KEYS.join(', ') + ')');
      }
    });

    var id = message.id;
    if (id === undefined || id === null) {
      do { id = numberedId('8000', ++streamCount); } while (streams.has(id));
    } else {
      var idProblem = badId(id);
      if (idProblem) throw invalid(where, 'the stream id ' + idProblem);
    }
    var type = message.type === null ? undefined : message.type;
    if (type !== undefined) {
      var typeProblem = badId(type);
      if (typeProblem) throw invalid(where, 'the stream type ' + typeProblem);
    }
    var stream = streams.get(id);
    if (!stream && type === undefined) {
      throw invalid(where, 'stream ' + JSON.stringify(id) + ' does not exist yet, so the message needs a "type"', { streamId: id });
    }
    if (stream && type !== undefined && type !== stream.type) {
      throw invalid(where, 'stream ' + JSON.stringify(id) + ' is a ' + stream.type + ' stream, not ' + type, { streamId: id });
    }
    var expected = null;
    if (has(message, 'expected_version') && message.expected_version !== null) {
      expected = message.expected_version;
      if (typeof expected !== 'number' || !Number.isInteger(expected) || expected < 0 || expected > MAX_VERSION) {
        throw invalid(where, 'expected_version must be a whole number >= 0 (0: the stream must be new; at most 2^53 - 1), not ' +
          JSON.stringify(expected));
      }
      var actual = stream ? stream.version : 0;
      if (expected !== actual) {
        throw fail('ConcurrencyError', 'message ' + where.message + ': stream ' + JSON.stringify(id) + ' is at version ' + actual +
          ', not the expected version ' + expected, { streamId: id, expected: expected, actual: actual, messageNumber: where.message });
      }
    }
    var metadata = null;
    if (has(message, 'metadata') && message.metadata !== null) {
      if (!isPlainObject(message.metadata)) throw invalid(where, 'metadata must be an object, not ' + typeName(message.metadata));
      var metaProblem = unstorable(message.metadata);
      if (metaProblem) throw invalid(where, 'the metadata cannot be stored: ' + metaProblem);
      metadata = clone(message.metadata);
    }
    var timestamp = now;
    if (has(message, 'timestamp') && message.timestamp !== null) {
      var ms = isoMilliseconds(message.timestamp);
      if (ms === null) throw invalid(where, 'timestamp must be an ISO 8601 date-time that exists, not ' + JSON.stringify(message.timestamp));
      if (isNaN(ms)) throw invalid(where, 'timestamp must be an ISO 8601 date-time with a zone (Z or +hh:mm), not ' + JSON.stringify(message.timestamp));
      // (and a fraction of the last second that rounds up past it: the store keeps microseconds)
      if (ms < EARLIEST || ms > LATEST || (ms === LATEST && /:59\.999999[5-9]/.test(message.timestamp))) {
        throw invalid(where, 'timestamp must be between 0001-01-01 and 9999-12-31 in UTC, not ' + JSON.stringify(message.timestamp));
      }
      timestamp = new RealDate(ms).toISOString();
    }
    if (!has(message, 'data') || message.data === null) throw invalid(where, 'the message has no "data" (an event or a list of events)');
    var events = Array.isArray(message.data) ? message.data : [message.data];
    if (events.length === 0) throw invalid(where, '"data" holds no events');
    var tombstone = events.some(function (e) { return isPlainObject(e) && e.$type === DELETED; });
    if (tombstone && events.length > 1) throw invalid(where, 'a $deleted event (a stream\'s tombstone) is alone in its message');
    if (tombstone || (stream && stream.deleted)) tombstoneRules(where, id, stream, tombstone, expected);
    if (!stream) {
      stream = { type: type, version: 0 };
      streams.set(id, stream);
    }
    stream.deleted = tombstone;

    for (var e = 0; e < events.length; e++) {
      var evt = events[e];
      where.event = e + 1;
      if (!isPlainObject(evt)) throw invalid(where, 'an event is a JSON object with a "$type", not ' + typeName(evt));
      if (typeof evt.$type !== 'string' || evt.$type === '') {
        var slip = has(evt, 'type') && !has(evt, '$type') ?
          ' (this one has "type": the event\'s type is "$type", with a dollar sign)' : '';
        throw invalid(where, 'Missing $type in event: every event needs a "$type" string' + slip);
      }
      var eventTypeProblem = badId(evt.$type);
      if (eventTypeProblem) throw invalid(where, 'the event $type ' + eventTypeProblem);
      if (evt.$type.charAt(0) === '$' && evt.$type !== DELETED) {
        throw invalid(where, 'the event $type ' + JSON.stringify(evt.$type) + ' is reserved: types starting with $ are ' +
          'jsproj\'s ($deleted: a stream\'s tombstone)');
      }
      var eventProblem = unstorable(evt);
      if (eventProblem) throw invalid(where, 'the event cannot be stored: ' + eventProblem);
      var event = clone(evt);
      if (has(evt, '$id') && evt.$id !== null) {
        if (!isUuid(evt.$id)) throw invalid(where, 'the event $id must be a UUID, not ' + JSON.stringify(evt.$id));
        event.$id = evt.$id.toLowerCase();
      } else {
        do { event.$id = numberedId('9000', ++eventCount); } while (eventIds.has(event.$id));
      }
      if (eventIds.has(event.$id)) throw invalid(where, 'the event $id ' + event.$id + ' is used twice', { eventId: event.$id });
      eventIds.add(event.$id);
      stream.version += 1;
      position += 1;
      records.push({
        position: position, streamId: id, streamType: stream.type, version: stream.version,
        timestamp: timestamp, metadata: metadata, event: event
      });
    }
  }
  return records;
}

jsproj.parseEvents = parseEvents;
jsproj.normalize = normalize;
