'use strict';
// node bench/node/rebuild.js HOST PORT USER DATABASE PAGE_SIZE
// What a JavaScript shop would write to rebuild projections from jsproj's
// event log: the `pg` package reads pages of events in the order readers
// see (transaction, position), the same engine (js/) folds them in memory,
// and the documents are written at the end. Prints {"seconds", "events", "peakRss"}
// (seconds from the first read to the last write).

const { Client } = require('pg');
const { peakRss, writeDocuments } = require('./common');
const jsproj = require('../../js');


async function main() {
  const [host, port, user, database, pageSize] = process.argv.slice(2);
  const client = new Client({ host, port: Number(port), user, database });
  await client.connect();
  const projector = jsproj.createProjector();
  const engine = jsproj.engine;
  const sources = (await client.query('select distinct on (file) file, source from pge_projection_definitions order by file')).rows;
  jsproj.loadSources(projector, sources);
  const names = (await client.query("select name from pge_projection_definitions where lifecycle = 'async' order by name")).rows.map((r) => r.name);
  const started = process.hrtime.bigint();
  let tx = '0', position = 0, events = 0;
  for (;;) {
    const { rows } = await client.query(
      `select e.tx_id::text as tx, e.position, e.stream_id, s.type as stream_type, e.version,
              e.timestamp, e.metadata, e.type, e.id, e.data
       from pge_events e join pge_streams s on s.id = e.stream_id
       where (e.tx_id, e.position) > ($1::xid8, $2) and e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
       order by e.tx_id, e.position limit $3`, [tx, position, Number(pageSize)]);
    if (rows.length === 0) break;
    const records = rows.map((r) => {
      const event = Object.assign({ $type: r.type, $id: r.id }, r.data);
      return {
        position: Number(r.position), streamId: r.stream_id, streamType: r.stream_type, version: Number(r.version),
        timestamp: r.timestamp.toISOString(), metadata: r.metadata, event
      };
    });
    engine.applyInMemory(projector, records, { projections: names });
    const last = rows[rows.length - 1];
    tx = last.tx; position = Number(last.position); events += rows.length;
  }
  await writeDocuments(client, projector, names);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await client.end();
  process.stdout.write(JSON.stringify({ seconds, events, peakRss: peakRss() }) + '\n');
}

main().catch((e) => { console.error(e); process.exit(1); });
