'use strict';
// What both Node.js rebuild programs do alike (rebuild.js, rebuild_lines.js):
// write the documents the engine folded into tables of their own, and
// report the process's peak memory.

const fs = require('fs');

function peakRss() {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)[1]) * 1024;
}

// Each projection's documents into node_<name> (id, data), 1,000 per statement.
async function writeDocuments(client, projector, names) {
  for (const name of names) {
    const p = projector.projections[name];
    const table = 'node_' + name.toLowerCase();
    await client.query(`drop table if exists ${table}`);
    await client.query(`create table ${table} (id text primary key, data jsonb not null)`);
    const docs = p.kind === 'aggregate' ? { [name]: p.store.find(name) } : p.store.all();
    const ids = Object.keys(docs);
    for (let i = 0; i < ids.length; i += 1000) {
      const chunk = {};
      for (const id of ids.slice(i, i + 1000)) chunk[id] = docs[id];
      await client.query(`insert into ${table} (id, data) select key, value from jsonb_each($1::jsonb)`, [JSON.stringify(chunk)]);
    }
  }
}

module.exports = { peakRss, writeDocuments };
