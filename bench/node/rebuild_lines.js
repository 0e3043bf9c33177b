'use strict';
// node bench/node/rebuild_lines.js HOST PORT USER DATABASE PAGE_SIZE
// The rebuild a JavaScript shop would write knowing what jsproj's build does
// (src/jsproj/build.py), the fair match for it: the `pg` package reads each
// page as record lines -- one text value PostgreSQL builds, the query of
// jsproj's PAGE_AS_LINES (src/jsproj/store/log.py), gap-safe -- the engine's own
// recordsFromLines (js/lib/records.js) turns them into records, and the next
// page is read on a second connection while the current one folds. The same
// engine folds the pages in memory and the documents are written at the end,
// as bench/node/rebuild.js does. The engine is loaded from $JSPROJ_JS (the
// folder of index.js the bench passes: the one jsproj itself loads), else ../../js.
// Prints {"seconds", "events", "peakRss"} (seconds from the start, before
// connecting, to the last write: the interpreter's own startup is not in it).

const { Client } = require('pg');
const { peakRss, writeDocuments } = require('./common');
const jsproj = require(process.env.JSPROJ_JS || '../../js');

const started = process.hrtime.bigint();

// PAGE_AS_LINES of src/jsproj/store/log.py, with $1 (tx), $2 (position), $3 (limit) and the
// upper bound $4, $5: jsproj's END (a build's), as jsproj's build reads.
const END = ['18446744073709551615', 0];
const PAGE_AS_LINES = `
    select string_agg(concat_ws(E'\\t', e.position, to_json(e.stream_id), to_json(e.stream_type), e.version,
                                e.timestamp,
                                coalesce(e.metadata::text, 'null'), to_json(e.type), e.id, e.data, e.tx_id),
                      E'\\n' order by e.tx_id, e.position) as lines,
           count(*) as count
    from (select r.position, r.stream_id, r.stream_type, r.version, r.timestamp, r.metadata, r.type, r.id, r.data,
                 r.tx_id
          from pge_records() r
          where (r.tx_id, r.position) > ($1::xid8, $2)
            and (r.tx_id, r.position) <= ($4::xid8, $5)
            and r.tx_id < pg_snapshot_xmin(pg_current_snapshot())
          order by r.tx_id, r.position
          limit $3) as e`;


// The next page after (tx, position): {text, count, tx, position} of its last event, or null when there is none.
async function readPage(reader, tx, position, pageSize) {
  const { rows } = await reader.query(PAGE_AS_LINES, [tx, position, pageSize, ...END]);
  const count = Number(rows[0].count);
  if (count === 0) return null;
  const text = rows[0].lines;
  const last = text.slice(text.lastIndexOf('\n') + 1).split('\t');
  return { text, count, tx: last[9], position: Number(last[0]) };
}

async function main() {
  const [host, port, user, database, pageSize] = process.argv.slice(2);
  const client = new Client({ host, port: Number(port), user, database });
  const reader = new Client({ host, port: Number(port), user, database });
  await Promise.all([client.connect(), reader.connect()]);
  await reader.query("set timezone = 'UTC'; set datestyle = 'ISO, MDY'"); // the timestamps' text, as records.js reads it
  const projector = jsproj.createProjector();
  const engine = jsproj.engine;
  const sources = (await client.query('select distinct on (file) file, source from pge_projection_definitions order by file')).rows;
  jsproj.loadSources(projector, sources);
  const names = (await client.query("select name from pge_projection_definitions where lifecycle = 'async' order by name")).rows.map((r) => r.name);
  let events = 0;
  let next = readPage(reader, '0', 0, Number(pageSize));
  for (;;) {
    const page = await next;
    if (page === null) break;
    next = readPage(reader, page.tx, page.position, Number(pageSize)); // read ahead while this page folds
    engine.applyInMemory(projector, engine.recordsFromLines(page.text), { projections: names });
    events += page.count;
  }
  await writeDocuments(client, projector, names);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await Promise.all([client.end(), reader.end()]);
  process.stdout.write(JSON.stringify({ seconds, events, peakRss: peakRss() }) + '\n');
}

main().catch((e) => { console.error(e); process.exit(1); });
