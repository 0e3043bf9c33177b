'use strict';
// node bench/large_node.js KEYS EVENTS [engine|plain]
// One aggregate holding KEYS counters, one event per key in turn, folded in
// pages of 5,000 through the engine's in-memory host loop (applyInMemory, as a
// build does) or by hand-written code doing the same job. Large documents are
// what the value rule would copy whole after every event; the engine tracks
// them instead (js/lib/tracking.js). Prints {"seconds", "checksum"}.

const jsproj = require('../js');

const [keys, events] = process.argv.slice(2, 4).map(Number);
const mode = process.argv[4] || 'engine';
const records = [];
for (let i = 0; i < events; i++) {
  records.push({
    position: i + 1, streamId: 'counter', streamType: 'Counter', version: i + 1, timestamp: '2026-01-01T00:00:00.000Z',
    metadata: null, event: { $type: 'Hit', $id: 'e' + i, key: 'customer-' + (i % keys) }
  });
}

function engine() {
  const projector = jsproj.createProjector();
  jsproj.loadSources(projector, [{
    file: 'Counts.js',
    source: "projections.aggregate('Counts').by({ Hit: function (s, e) { s[e.key] = (s[e.key] || 0) + 1; } });"
  }]);
  for (let start = 0; start < events; start += 5000) jsproj.engine.applyInMemory(projector, records.slice(start, start + 5000));
  return projector.store.findAggregate('Counts');
}

// The same: the document kept as JSON text between pages, as a store has it.
function plain() {
  let text = '{}';
  for (let start = 0; start < events; start += 5000) {
    const counts = JSON.parse(text);
    for (const record of records.slice(start, start + 5000)) counts[record.event.key] = (counts[record.event.key] || 0) + 1;
    text = JSON.stringify(counts);
  }
  return JSON.parse(text);
}

const started = process.hrtime.bigint();
const counts = mode === 'plain' ? plain() : engine();
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
process.stdout.write(JSON.stringify({ seconds, checksum: Object.keys(counts).length + counts['customer-0'] }) + '\n');
