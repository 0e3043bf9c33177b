'use strict';
// Reading the log in the gap-safe order (docs/store.md#reading), by what happened (docs/reading.md), as
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
    if (row.appended_at !== undefined) this.appendedAt = row.appended_at;  // what since/until filter on
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

const MAX_TYPES = 32; // types (or stream types) one read may name, as Python's jsproj.store.filters
const MAX_NAME = 255;
const OPTIONS = ['after', 'limit', 'types', 'streamTypes', 'since', 'until', 'metadata', 'includeArchived'];
const ZONED = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/i;

function filterError(option, message) {
  return new errors.LogFilterError('readAll: ' + message, { option });
}

// A name or a non-empty list of names (duplicates dropped), or null.
function checkNames(given, option) {
  if (given === null || given === undefined) return null;
  const list = typeof given === 'string' ? [given] : given;
  if (!Array.isArray(list) || !list.length || !list.every((t) => typeof t === 'string' && t.length > 0 && t.length <= MAX_NAME)) {
    throw filterError(option, `${option} is a name or a non-empty list of names (1-${MAX_NAME} characters each), not ${JSON.stringify(given)}`);
  }
  const unique = [...new Set(list)];
  if (unique.length > MAX_TYPES) {
    throw filterError(option, `${option} names ${unique.length} types; a read takes at most ${MAX_TYPES} (read the others apart)`);
  }
  return unique;
}

// A Date or ISO 8601 text with a zone, as ISO text; or null.
function checkTime(given, option) {
  if (given === null || given === undefined) return null;
  if (given instanceof Date && !Number.isNaN(given.getTime())) return given.toISOString();
  if (typeof given === 'string' && ZONED.test(given) && !Number.isNaN(Date.parse(given))) return given;
  throw filterError(option, `${option} must be a Date or an ISO 8601 date-time with a zone (2026-01-05T08:00:00Z), not ${JSON.stringify(given)}`);
}

function checkMetadata(given) {
  if (given === null || given === undefined) return null;
  if (typeof given !== 'object' || Array.isArray(given)) {
    throw filterError('metadata', `metadata is a JSON object the events' metadata must contain, not ${JSON.stringify(given)}`);
  }
  return JSON.stringify(given);
}

function checkFlag(given, option) {
  if (given === undefined || given === null) return false;
  if (typeof given !== 'boolean') throw filterError(option, `${option} is true or false, not ${JSON.stringify(given)}`);
  return given;
}

function checkReadOptions(options) {
  const given = options || {};
  const unknown = Object.keys(given).filter((key) => !OPTIONS.includes(key));
  if (unknown.length) throw filterError(unknown[0], `no option ${unknown[0]} (options: ${OPTIONS.join(', ')})`);
  const { after = 0, limit = DEFAULT_READ_LIMIT } = given;
  if (!Number.isSafeInteger(after) || after < 0) {
    throw filterError('after', 'after is a position readAll returned (or 0), not ' + JSON.stringify(after));
  }
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw filterError('limit', 'limit is a number of events (1 or more), not ' + JSON.stringify(limit));
  }
  const since = checkTime(given.since, 'since'), until = checkTime(given.until, 'until');
  if (since !== null && until !== null && Date.parse(since) >= Date.parse(until)) {
    throw filterError('since', `since (${since}) must be before until (${until}): the window is [since, until)`);
  }
  return { after, limit, types: checkNames(given.types, 'types'), streamTypes: checkNames(given.streamTypes, 'streamTypes'),
    since, until, metadata: checkMetadata(given.metadata), includeArchived: checkFlag(given.includeArchived, 'includeArchived') };
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

// The columns of a RecordedEvent, from rows `alias` of pge_events (the stream's type is the event's copy of it).
function logColumns(alias) {
  return `${alias}.position, ${alias}.id::text as event_id, ${alias}.stream_id, ${alias}.stream_type, ` +
    `${alias}.version, ${alias}.type, ${alias}.data, ${alias}.metadata, ${alias}.timestamp, ${alias}.appended_at`;
}

// The page query of checked options, as Python's (src/jsproj/store/reading.py): by event types, else stream
// types, one range scan per name on its index (sql/migrations/0014_log_reads.sql), merged; else the log in order.
// $1 tx, $2 after, $3 limit; the filters' values follow, always parameters.
function pageQuery(sql, o) {
  const params = [];
  const param = (value, cast) => { params.push(value); return `$${params.length + 3}::${cast}`; };
  const key = o.types ? ['type', o.types] : o.streamTypes ? ['stream_type', o.streamTypes] : null;
  const conditions = [gapSafeAfter(sql, 'e', '$1', '$2')];
  if (o.types && key[0] !== 'type') conditions.push(`e.type = any(${param(o.types, 'text[]')})`);
  if (o.streamTypes && key[0] !== 'stream_type') conditions.push(`e.stream_type = any(${param(o.streamTypes, 'text[]')})`);
  if (o.since !== null) conditions.push(`e.appended_at >= ${param(o.since, 'timestamptz')}`);
  if (o.until !== null) conditions.push(`e.appended_at < ${param(o.until, 'timestamptz')}`);
  if (o.metadata !== null) conditions.push(`e.metadata @> ${param(o.metadata, 'jsonb')}`);
  // (archived streams are left out unless asked for, as in Python: docs/lifecycle.md)
  if (!o.includeArchived) conditions.push(`e.stream_id not in (select a.id from ${sql}.pge_streams a where a.archived_at is not null)`);
  const where = conditions.join(' and ');
  if (key === null) {
    return { text: `select ${logColumns('e')} from ${sql}.pge_events e where ${where}
      order by e.tx_id, e.position limit $3`, params };
  }
  const keys = param(key[1], 'text[]');
  return { text: `select ${logColumns('e')} from unnest(${keys}) as k (key)
    cross join lateral (select e.* from ${sql}.pge_events e where e.${key[0]} = k.key and ${where}
                        order by e.tx_id, e.position limit $3) as e
    order by e.tx_id, e.position limit $3`, params };
}

// Events after the one at position `after` (0: from the start), at most `limit`, in the gap-safe order, that the
// filters let through (docs/reading.md).
async function readAll(store, options) {
  const o = checkReadOptions(options);
  const tx = await transactionAt(store, o.after);
  const { text, params } = pageQuery(store.sql, o);
  const rows = await store.query(text, [tx, o.after, o.limit, ...params]);
  return rows.map((row) => new RecordedEvent(row));
}

module.exports = { RecordedEvent, readAll, gapSafeAfter, eventColumns, DEFAULT_READ_LIMIT, MAX_TYPES };
