'use strict';
// node bench/fold_node.js EVENTS STREAMS PAGE_SIZE [objects|text|plain]
// The Node.js side of bench/scenario_bridge.py (and the in-memory limit of scenario_rebuild.py): the same projections and events,
// folded through the same engine with the host loop a Node app would write
// (route, load documents, apply, write them back). Prints {"seconds", "checksum", "peakRss"}.
//   objects: events and documents stay JavaScript objects in memory (the engine's limit)
//   text:    events arrive as JSON text and documents are kept as JSON text,
//            as a host reading from and writing to PostgreSQL has them
//   plain:   the text job without jsproj: the same documents folded by hand-written
//            code (a switch on the event type), what a competent engineer would write
//            for these two projections -- a baseline that no change to the engine moves

const fs = require('fs');
const path = require('path');
const jsproj = require('../js');

const [events, streams, pageSize] = process.argv.slice(2, 5).map(Number);
const asText = process.argv[5] === 'text' || process.argv[5] === 'plain';
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
// The plain job: per page, parse the events, load each document touched (JSON
// text -> object) once, apply the event by hand, write the changed ones back.
function plainFold(inputs) {
  const docs = new Map();       // "Balance\u0000id" or "Bank" -> JSON text
  for (const input of inputs) {
    const page = JSON.parse(input);
    const live = new Map();
    for (const record of page) {
      const key = 'Balance\u0000' + record.streamId;
      let balance = live.get(key);
      if (balance === undefined) {
        const text = docs.get(key);
        balance = text === undefined ? { balance: 0, deposits: 0, withdrawals: 0, last: null } : JSON.parse(text);
        live.set(key, balance);
      }
      let bank = live.get('Bank');
      if (bank === undefined) {
        const text = docs.get('Bank');
        bank = text === undefined ? { deposited: 0, withdrawn: 0, events: 0 } : JSON.parse(text);
        live.set('Bank', bank);
      }
      const evt = record.event;
      switch (evt.$type) {
        case 'Deposited':
          balance.balance += evt.amount; balance.deposits += 1; balance.last = evt.at;
          bank.deposited += evt.amount; bank.events += 1;
          break;
        case 'Withdrawn':
          balance.balance -= evt.amount; balance.withdrawals += 1; balance.last = evt.at;
          bank.withdrawn += evt.amount; bank.events += 1;
          break;
      }
    }
    for (const [key, doc] of live) docs.set(key, JSON.stringify(doc));
  }
  return JSON.parse(docs.get('Bank'));
}

if (process.argv[5] === 'plain') {
  const begun = process.hrtime.bigint();
  const bank = plainFold(pages);
  const took = Number(process.hrtime.bigint() - begun) / 1e9;
  process.stdout.write(JSON.stringify({ seconds: took, checksum: bank.deposited - bank.withdrawn, peakRss: process.resourceUsage().maxRSS * 1024 }) + '\n');
  process.exit(0);
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
