'use strict';
// node bench/node/emmett.js JSPROJ_LIVE_URL EMMETT_LIVE_URL EMMETT_INLINE_URL
// The Node side of bench/scenario_emmett.py: jsproj's Node client and Emmett 0.42
// (@event-driven-io/emmett-postgresql) on the same PostgreSQL, each in a database of
// its own, driven by one JSON request a line on stdin, one JSON answer a line on stdout.
//   {"op": "seed", "stream", "events"}             append jsproj-shaped events ({$type, ...data}) to an Emmett
//                                                  stream, 1,000 an append, with no projection -> {"version"}
//   {"op": "live", "side", "stream", "repeats"}    fold the stream `repeats` times, one after the other: jsproj's
//                                                  store.live('Balance', stream) or Emmett's aggregateStream
//                                                  -> {"ms": [each fold], "state"}
//   {"op": "append", "stream", "events"}           one Emmett append per event, with the inline projection
//                                                  -> {"ms": [each append]}
//   {"op": "document", "stream"}                   the inline projection's document of the stream -> {"document"}
// The same fold on both sides: bench/scenario_inline.py's STREAM projection, Balance.

const readline = require('readline');
const { projections } = require('@event-driven-io/emmett');
const { getPostgreSQLEventStore, pongoSingleStreamProjection } = require('@event-driven-io/emmett-postgresql');
const { pongoClient } = require('@event-driven-io/pongo');
const jsproj = require('../../js/client');

// Balance as an Emmett user writes it: an evolve function of (state, event) -> the next state.
const initialState = () => ({ balance: 0, moves: 0 });
function evolve(state, { type, data }) {
  switch (type) {
    case 'Deposited':
      return { balance: state.balance + data.amount, moves: state.moves + 1 };
    case 'Withdrawn':
      return { balance: state.balance - data.amount, moves: state.moves + 1 };
    default:
      return state;
  }
}

// Balance as an inline projection: a Pongo document per stream, what Emmett's guides use for read models.
const COLLECTION = 'balance';
const balance = pongoSingleStreamProjection({
  collectionName: COLLECTION,
  canHandle: ['Deposited', 'Withdrawn'],
  initialState,
  evolve,
});

// A jsproj event {$type, ...data} as an Emmett event {type, data}.
function toEmmett(event) {
  const { $type, ...data } = event;
  return { type: $type, data };
}

function milliseconds(started) {
  return Number(process.hrtime.bigint() - started) / 1e6;
}

async function main() {
  const [jsprojUrl, liveUrl, inlineUrl] = process.argv.slice(2);
  const ours = jsproj.connect({ dsn: jsprojUrl });
  const plain = getPostgreSQLEventStore(liveUrl);
  const inline = getPostgreSQLEventStore(inlineUrl, { projections: projections.inline([balance]) });
  const pongo = pongoClient(inlineUrl);

  const ops = {
    async seed({ stream, events }) {
      let version = 0n;
      for (let i = 0; i < events.length; i += 1000) {
        const result = await plain.appendToStream(stream, events.slice(i, i + 1000).map(toEmmett));
        version = result.nextExpectedStreamVersion;
      }
      return { version: Number(version) };
    },
    async live({ side, stream, repeats }) {
      const ms = [];
      let state = null;
      for (let i = 0; i < repeats; i++) {
        const started = process.hrtime.bigint();
        if (side === 'jsproj') state = await ours.live('Balance', stream);
        else state = (await plain.aggregateStream(stream, { evolve, initialState })).state;
        ms.push(milliseconds(started));
      }
      return { ms, state };
    },
    async append({ stream, events }) {
      const ms = [];
      for (const event of events) {
        const started = process.hrtime.bigint();
        await inline.appendToStream(stream, [toEmmett(event)]);
        ms.push(milliseconds(started));
      }
      return { ms };
    },
    async document({ stream }) {
      const found = await pongo.db().collection(COLLECTION).findOne({ _id: stream });
      if (!found) return { document: null };
      const { _id, _version, ...document } = found;
      return { document };
    },
  };

  try {
    for await (const line of readline.createInterface({ input: process.stdin })) {
      const request = JSON.parse(line);
      const op = ops[request.op];
      if (!op) throw new Error('unknown op ' + request.op);
      process.stdout.write(JSON.stringify(await op(request)) + '\n');
    }
  } finally {
    await Promise.all([ours.close(), plain.close(), inline.close(), pongo.close()]);
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
