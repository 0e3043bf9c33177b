'use strict';
// @jsproj/client: a jsproj event store from Node, on the `pg` driver — the
// spike's fifth deliverable. Appends and reads go through the store's SQL
// functions (pge_append, and the spike's pge_fetch_stream and pge_find_view:
// docs/compat.md), so every rule of the store holds; live aggregation folds
// a stream's events here with the same engine as every other host
// (`require('@jsproj/projections')`), from the projections deployed in the store.
// Reading as Python's library does: the log in the gap-safe order (log.js),
// views by field (views.js), subscriptions with a checkpoint (subscription.js).

const { Pool } = require('pg');
const engineModule = require('@jsproj/projections');
const errors = require('./errors');
const log = require('./log');
const { View } = require('./views');
const { Subscription } = require('./subscription');

const SAFE_SCHEMA = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const OPTION_KEYS = ['expectedVersion', 'metadata'];

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

// A trailing argument that is options, not an event: a plain object of option keys only.
function isOptions(value) {
  return isPlainObject(value) && Object.keys(value).every((key) => OPTION_KEYS.includes(key));
}

function withOptions(message, options) {
  const out = Object.assign({}, message);
  if (options.expectedVersion !== undefined) {
    if (!Number.isInteger(options.expectedVersion) || options.expectedVersion < 0) {
      throw new errors.InputError('expectedVersion must be a whole number >= 0, not ' + JSON.stringify(options.expectedVersion));
    }
    out.expected_version = options.expectedVersion;
  }
  if (options.metadata !== undefined) out.metadata = options.metadata;
  return out;
}

// The append message for append()'s arguments, as the spike's client made it:
// (message[, options]) or (streamId, type, ...events[, options]); a stream id
// of null starts a new stream, a type of null appends to an existing one.
function toEventMessage(args) {
  const rest = args.slice();
  const options = rest.length > 1 && isOptions(rest[rest.length - 1]) ? rest.pop() : {};
  if (rest.length === 1 && isPlainObject(rest[0])) return withOptions(rest[0], options);
  const [streamId, type, ...events] = rest;
  if (streamId !== null && streamId !== undefined && typeof streamId !== 'string') {
    throw new errors.InputError('append(streamId, type, ...events): the stream id is a string or null, not ' + typeof streamId);
  }
  if (type !== null && type !== undefined && typeof type !== 'string') {
    throw new errors.InputError('append(streamId, type, ...events): the stream type is a string or null, not ' + typeof type);
  }
  const data = events.length === 1 && Array.isArray(events[0]) ? events[0] : events;
  if (data.length === 0) throw new errors.InputError('append() needs a message, or a stream id, a type and events');
  const message = { data: data };
  if (streamId !== null && streamId !== undefined) message.id = streamId;
  if (type !== null && type !== undefined) message.type = type;
  return withOptions(message, options);
}

class EventStore {
  // {dsn | connectionString, schema, pool}: the DSN defaults to $JSPROJ_DSN,
  // then to the `pg` driver's PG* variables; the schema to $JSPROJ_SCHEMA, then public.
  constructor(options = {}) {
    const schema = options.schema || process.env.JSPROJ_SCHEMA || 'public';
    if (!SAFE_SCHEMA.test(schema)) throw new errors.InputError('schema ' + JSON.stringify(schema) + ' is not a safe identifier');
    this.schema = schema;
    this.sql = '"' + schema + '"';
    const dsn = options.dsn || options.connectionString || process.env.JSPROJ_DSN;
    this.pool = options.pool || new Pool(dsn ? { connectionString: dsn } : {});
    // What a subscription connects with (a connection of its own): the DSN, else the given pool's, else PG*.
    this.connection_ = dsn ? { connectionString: dsn } : options.pool ? options.pool.options || null : {};
    this.live_ = null;
  }

  connectionConfig() {
    if (!this.connection_) {
      throw new errors.InputError('a subscription opens a connection of its own: pass the dsn with the pool, connect({dsn, pool})');
    }
    return this.connection_;
  }

  async query(text, values) {
    try {
      return (await this.pool.query(text, values)).rows;
    } catch (e) {
      throw errors.translate(e);
    }
  }

  // Append one message (all or nothing) -> {streamId, version, positions}.
  async append(...args) {
    const message = toEventMessage(args);
    const rows = await this.query('select ' + this.sql + '.pge_append($1::jsonb) as r', [JSON.stringify(message)]);
    return rows[0].r;
  }

  // Append messages all or nothing, in one round trip (a batch: pge_append of an array) -> [{streamId, version,
  // positions}, ...]. Every message is checked before any is written, so a refused one uses no position; its
  // error names it ("message N: ...", messageNumber).
  async appendAll(messages) {
    if (!Array.isArray(messages)) {
      throw new errors.InputError('appendAll(messages) takes an array of append messages, not ' + typeof messages);
    }
    if (messages.length === 0) return [];
    const rows = await this.query('select ' + this.sql + '.pge_append($1::jsonb) as r', [JSON.stringify(messages)]);
    return rows[0].r;
  }

  // {id, type, version, events: [each event as appended]} or null.
  async fetchStream(streamId) {
    const rows = await this.query('select ' + this.sql + '.pge_fetch_stream($1::text) as s', [String(streamId)]);
    return rows[0].s;
  }

  // A stored projection's document (an aggregate's needs no id), or null.
  async fetchView(projection, id = '') {
    const rows = await this.query('select ' + this.sql + '.pge_find_view($1::text, $2::text) as d', [String(id), String(projection)]);
    return rows[0].d;
  }

  // Events after the one at position `after` (0: from the start), at most `limit` (default 1000), in the gap-safe
  // order: a reader that passes the last position it saw never misses an event (Python's read_all).
  async readAll(options = {}) {
    return log.readAll(this, options);
  }

  // The documents of projection `name`: get(id), find(where, {orderBy, limit, after}), count(where).
  views(name) {
    return new View(this, name);
  }

  // Subscription `name`: an async iterable of {event, client}, from its checkpoint (subscription.js).
  subscribe(name, options = {}) {
    return new Subscription(this, name, options);
  }

  // Empty the store's streams, events and documents (the spike's tests do it between scenarios;
  // only the store's owner may): pge_clean_all_events().
  async cleanAllEvents() {
    await this.query('select ' + this.sql + '.pge_clean_all_events()');
  }

  // The document stream projection `projection` makes of the stream's events, folded here.
  async live(projection, streamId) {
    const projector = await this.deployedProjector();
    const found = projector.projections[projection];
    if (!found) throw new errors.UnknownProjectionError('there is no deployed projection ' + projection);
    if (found.kind !== 'stream') {
      throw new errors.ProjectionError('live aggregation folds one stream, and ' + projection + ' is a ' + found.kind +
        ' projection: use a projectStream projection', { projection: projection });
    }
    const rows = await this.query('select ' + this.sql + '.pge_event_record(e.position, e.stream_id, s.type, e.version, ' +
      'e.timestamp, e.metadata, e.type, e.id, e.data) as r from ' + this.sql + '.pge_events e join ' + this.sql +
      '.pge_streams s on s.id = e.stream_id where e.stream_id = $1 order by e.version', [String(streamId)]);
    if (rows.length === 0) return null;
    found.store.documents.clear();
    try {
      engineModule.engine.applyInMemory(projector, rows.map((row) => JSON.parse(row.r)), { projections: [projection] });
    } catch (e) {
      throw errors.fromInfo(engineModule.engine.errorInfo(e), errors.ProjectionError);
    }
    const document = found.store.find(String(streamId));
    return document === undefined ? null : document;
  }

  // The deployed projections loaded into a projector of their own, again when a deploy moved the generation.
  async deployedProjector() {
    const [{ generation }] = await this.query('select generation::text from ' + this.sql + '.pge_engine');
    if (this.live_ && this.live_.generation === generation) return this.live_.projector;
    const sources = await this.query('select distinct on (file) file, source from ' + this.sql +
      '.pge_projection_definitions order by file');
    const projector = engineModule.createProjector();
    try {
      engineModule.loadSources(projector, sources.map((row) => ({ file: row.file, source: row.source })));
    } catch (e) {
      throw errors.fromInfo(engineModule.engine.errorInfo(e), errors.ProjectionError);
    }
    this.live_ = { generation: generation, projector: projector };
    return projector;
  }

  async close() {
    await this.pool.end();
  }
}

function connect(options) {
  return new EventStore(options);
}

module.exports = { connect, EventStore, Subscription, View, RecordedEvent: log.RecordedEvent, toEventMessage, errors };
