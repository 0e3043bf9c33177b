'use strict';
// Reading the whole log in the gap-safe order (docs/store.md#reading), as
// Python's EventStore.read_all does: after a position in (transaction,
// position) order, and only up to the end a gap-safe reader sees, which the
// store's SQL says once: pge_log_end() (sql/functions/records.sql), the last
// event of the transactions older than every running one. So a page never
// skips an event that commits later with a smaller position. Python says the
// same condition once in src/jsproj/store/log.py; this file says it in no
// other way than by that function.

const errors = require('./errors');

const DEFAULT_READ_LIMIT = 1000; // events per readAll, as Python's read_all

// An event as stored (Python's jsproj.RecordedEvent): `event` is the event as appended.
class RecordedEvent {
  constructor(row) {
    this.position = Number(row.position);
    this.eventId = row.event_id;
    this.streamId = row.stream_id;
    this.streamType = row.stream_type;
    this.version = Number(row.version);
    this.type = row.type;
    this.data = row.data;
    this.metadata = row.metadata;
    this.timestamp = row.timestamp;
  }

  get event() {
    return Object.assign({ $type: this.type, $id: this.eventId }, this.data);
  }
}

// The gap-safe condition on rows `alias` of pge_records() (schema `sql`, quoted): after the parameters
// `tx` (xid8 as text) and `position`, up to pge_log_end(). Follow it with `order by alias.tx_id, alias.position`.
function gapSafeAfter(sql, alias, tx, position) {
  return `(${alias}.tx_id, ${alias}.position) > (${tx}::xid8, ${position}::bigint)` +
    ` and (${alias}.tx_id, ${alias}.position) <= (select l.tx_id, l.position from ${sql}.pge_log_end() l)`;
}

// The columns of a RecordedEvent, from rows `alias` of pge_records().
function eventColumns(alias) {
  return `${alias}.position, ${alias}.id::text as event_id, ${alias}.stream_id, ${alias}.stream_type, ` +
    `${alias}.version, ${alias}.type, ${alias}.data, ${alias}.metadata, ${alias}.timestamp`;
}

function checkReadOptions(options) {
  const { after = 0, limit = DEFAULT_READ_LIMIT, ...rest } = options || {};
  const unknown = Object.keys(rest);
  if (unknown.length) throw new errors.InputError('readAll({after, limit}) has no option ' + unknown[0]);
  if (!Number.isSafeInteger(after) || after < 0) {
    throw new errors.InputError('readAll: after is a position readAll returned (or 0), not ' + JSON.stringify(after));
  }
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new errors.InputError('readAll: limit is a number of events (1 or more), not ' + JSON.stringify(limit));
  }
  return { after, limit };
}

// The transaction of the event at `after` (0: before the first), for the order's other half.
async function transactionAt(store, after) {
  if (after === 0) return '0';
  const rows = await store.query(`select tx_id::text as tx from ${store.sql}.pge_events where position = $1`, [after]);
  if (rows.length === 0) {
    throw new errors.UnknownPositionError(`there is no event at position ${after}: pass 0 or a position readAll returned`);
  }
  return rows[0].tx;
}

// Events after the one at position `after` (0: from the start), at most `limit`, in the gap-safe order.
async function readAll(store, options) {
  const { after, limit } = checkReadOptions(options);
  const tx = await transactionAt(store, after);
  const rows = await store.query(`select ${eventColumns('r')} from ${store.sql}.pge_records() r
    where ${gapSafeAfter(store.sql, 'r', '$1', '$2')}
    order by r.tx_id, r.position limit $3`, [tx, after, limit]);
  return rows.map((row) => new RecordedEvent(row));
}

module.exports = { RecordedEvent, readAll, gapSafeAfter, eventColumns, DEFAULT_READ_LIMIT };
