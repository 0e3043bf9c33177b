'use strict';
// node bench/fold_node.js EVENTS STREAMS PAGE_SIZE [objects|text]
// The Node.js side of bench/scenario_bridge.py (and the in-memory limit of scenario_rebuild.py): the same projections and events,
// folded through the same engine with the host loop a Node app would write
// (route, load documents, apply, write them back). Prints {"seconds", "checksum", "peakRss"}.
//   objects: events and documents stay JavaScript objects in memory (the engine's limit)
//   text:    events arrive as JSON text and documents are kept as JSON text,
//            as a host reading from and writing to PostgreSQL has them

const fs = require('fs');
const path = require('path');
const jsproj = require('../js');

const [events, streams, pageSize] = process.argv.slice(2, 5).map(Number);
const asText = process.argv[5] === 'text';
const engine = jsproj.engine;
const projector = jsproj.createProjector();
jsproj.loadSources(projector, [{ file: 'fold_projections.js', source: fs.readFileSync(path.join(__dirname, 'fold_projections.js'), 'utf8') }]);

function makeRecords(count, streamCount) {
  const versions = new Array(streamCount).fill(0);
  const records = new Array(count);
  for (let i = 0; i < count; i++) {
    const s = i % streamCount;
    versions[s] += 1;
    records[i] = {
      position: i + 1, streamId: 'account-' + s, streamType: 'Account', version: versions[s],
      timestamp: '2026-01-01T00:00:00.000Z', metadata: null,
      event: { $type: i % 5 === 4 ? 'Withdrawn' : 'Deposited', $id: 'e' + i, amount: (i % 97) + 1, at: i }
    };
  }
  return records;
}

const records = makeRecords(events, streams);
const pages = [];
for (let start = 0; start < records.length; start += pageSize) {
  const page = records.slice(start, start + pageSize);
  pages.push(asText ? JSON.stringify(page) : page);
}
const store = new Map();        // "name\u0000id" -> document (JSON text in text mode)
const load = asText ? (doc) => JSON.parse(doc) : (doc) => doc;
const save = asText ? (doc) => JSON.stringify(doc) : (doc) => doc;
const started = process.hrtime.bigint();
for (const input of pages) {
  const page = asText ? JSON.parse(input) : input;
  const keys = engine.route(projector, page);
  const documents = {};
  for (const name of Object.keys(keys)) {
    const bucket = {};
    for (const id of keys[name]) {
      const doc = store.get(name + '\u0000' + id);
      bucket[id] = doc === undefined ? null : load(doc);
    }
    documents[name] = bucket;
  }
  const result = engine.apply(projector, page, documents);
  if (result.errors.length) throw result.errors[0];
  for (const name of Object.keys(result.changes)) {
    const change = result.changes[name];
    for (const id of Object.keys(change.upserts)) store.set(name + '\u0000' + id, save(change.upserts[id]));
    for (const id of change.deletes) store.delete(name + '\u0000' + id);
  }
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const bank = load(store.get('Bank\u0000Bank'));
const peakRss = process.resourceUsage().maxRSS * 1024;
process.stdout.write(JSON.stringify({ seconds, checksum: bank.deposited - bank.withdrawn, documents: store.size, peakRss }) + '\n');
