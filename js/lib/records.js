'use strict';
// Event records from a compact text page, for hosts that read large pages of
// events (builds): PostgreSQL aggregates one line per event from its own
// output formats -- several times cheaper than building JSON records in SQL
// -- and V8 turns the lines into the engine's records. Lines are separated by
// \n, fields by \t; strings are JSON-quoted, so neither can occur inside one:
//   position, "stream id", "stream type", version, timestamp (UTC text),
//   metadata (JSON or null), "type", id, data (JSON)
// Further fields (such as the transaction id a host pages by) are ignored.

var fail = jsproj.fail;
// The real clock: the engine's own (the global Date is the event's clock in sandboxes).
var RealDate = jsproj.RealDate;

// "2026-11-27 08:36:33.404905+00" (TimeZone UTC) as the engine writes timestamps.
// Consecutive events usually share one (their append's): the last is remembered.
var lastTimestamp = null, lastIso = null;
function isoTimestamp(text) {
  if (text !== lastTimestamp) {
    var ms = RealDate.parse(text.replace(' ', 'T').replace(/\+00$/, 'Z'));
    if (isNaN(ms)) throw fail('EngineError', 'not a UTC timestamp: ' + JSON.stringify(text));
    lastIso = new RealDate(ms).toISOString();
    lastTimestamp = text;
  }
  return lastIso;
}

function recordsFromLines(text) {
  var lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  var records = new Array(lines.length);
  for (var i = 0; i < lines.length; i++) {
    var f = lines[i].split('\t');
    if (f.length < 9) throw fail('EngineError', 'record line ' + (i + 1) + ' has ' + f.length + ' fields, not 9 or more');
    var data = f[8];
    records[i] = {
      position: Number(f[0]),
      streamId: JSON.parse(f[1]),
      streamType: JSON.parse(f[2]),
      version: Number(f[3]),
      timestamp: isoTimestamp(f[4]),
      metadata: JSON.parse(f[5]),
      event: JSON.parse('{"$type":' + f[6] + ',"$id":"' + f[7] + '"' + (data === '{}' ? '}' : ',' + data.slice(1)))
    };
  }
  return records;
}

jsproj.recordsFromLines = recordsFromLines;
