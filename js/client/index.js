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
// Events a page of a live fold (Python's DEFAULT_PAGE_SIZE, src/jsproj/projections/live.py), and the pages
// read ahead while one folds, each on a connection of the pool, so that the server makes two at once
// (10,000 events on 2 cores: ~20% faster than one ahead; three, a few % more).
const LIVE_PAGE_SIZE = 2000;
const LIVE_READ_AHEAD = 2;

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

// A stream id a lifecycle call was given: a non-empty string, never a value turned into one (null, an array).
function streamIdOf(value, call) {
  if (typeof value !== 'string' || value === '') {
    throw new errors.InputError(call + '(streamId): the stream id is a non-empty string, not ' + (value === '' ? "''" : value === null ? 'null' : typeof value));
  }
  return value;
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

// The queries of live() in schema `s` (quoted): the stream's type and version, and the events of a range of
// its versions as record lines (js/lib/records.js), read as Python's live fold reads them
// (src/jsproj/store/log.py record_lines, src/jsproj/projections/live.py): by version on the stream's
// (stream_id, version) index, the stream's type a parameter (JSON text), timestamps in UTC whatever the
// session's settings.
function liveQueries(s) {
  return {
    head: 'select s.type, coalesce((select max(e.version) from ' + s + '.pge_events e where e.stream_id = s.id), 0)::text' +
      ' as version, s.archived_at is not null as archived from ' + s + '.pge_streams s where s.id = $1',
    page: "select string_agg(concat_ws(E'\\t', e.position, to_json(e.stream_id), $2::text, e.version," +
      " to_char(e.timestamp at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'," +
      " coalesce(e.metadata::text, 'null'), to_json(e.type), e.id, e.data), E'\\n' order by e.version) as lines" +
      ' from ' + s + '.pge_events e where e.stream_id = $1 and e.version > $3 and e.version <= $4'
  };
}

// The document after a page of record lines, given the one before it (null: there is none) -- one engine
// call, as Python's live fold makes it.
function foldLines(projector, projection, id, lines, document) {
  const engine = engineModule.engine;
  try {
    const supplied = engine.dict();
    supplied[projection] = engine.dict();
    supplied[projection][id] = document;
    const result = engine.apply(projector, engine.recordsFromLines(lines), supplied, { projections: [projection] });
    if (result.errors.length > 0) throw result.errors[0];
    const change = result.changes[projection];
    if (change === undefined) return document;
    if (Object.prototype.hasOwnProperty.call(change.upserts, id)) return change.upserts[id];
    return change.deletes.includes(id) ? null : document;
  } catch (e) {
    throw errors.fromInfo(engine.errorInfo(e), errors.ProjectionError);
  }
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
    this.liveQueries_ = liveQueries(this.sql);
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

  // Archive a stream -> {streamId, changed, archivedAt}: its events stay, reads, live folds and builds leave them
  // out, appends are refused (StreamArchivedError) until it is unarchived; views built from it are kept
  // (docs/lifecycle.md). pge_archive_stream: granted to no role unless the owner grants it.
  async archiveStream(streamId) {
    const id = streamIdOf(streamId, 'archiveStream');
    const rows = await this.query('select ' + this.sql + '.pge_archive_stream($1::text) as a', [id]);
    const done = rows[0].a;
    return { streamId: id, changed: done.changed, archivedAt: done.archivedAt ? new Date(done.archivedAt) : null };
  }

  // Unarchive a stream -> {streamId, changed, archivedAt: null}: it is read again and takes appends.
  async unarchiveStream(streamId) {
    const id = streamIdOf(streamId, 'unarchiveStream');
    const rows = await this.query('select ' + this.sql + '.pge_unarchive_stream($1::text) as a', [id]);
    return { streamId: id, changed: rows[0].a.changed, archivedAt: null };
  }

  // Delete a stream (soft) -> {streamId, version, positions}: appends its tombstone, a $deleted event, which
  // projections see; later appends are refused (StreamDeletedError) unless they give the tombstone's version as
  // expectedVersion, which re-creates the stream. {expectedVersion, metadata} as append's.
  async deleteStream(streamId, options = {}) {
    const unknown = Object.keys(options).filter((key) => key !== 'expectedVersion' && key !== 'metadata');
    if (unknown.length) throw new errors.InputError('deleteStream takes {expectedVersion, metadata}, not ' + unknown.join(', '));
    return this.append(withOptions({ id: streamIdOf(streamId, 'deleteStream'), data: { $type: '$deleted' } }, options));
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

  // The document stream projection `projection` makes of the stream's events, folded here, page by page
  // (null: the stream has no events, is of another type, or the fold deleted the document).
  async live(projection, streamId, options) {
    const id = String(streamId);
    const includeArchived = Boolean(options && options.includeArchived);
    const reading = this.query(this.liveQueries_.head, [id]);   // while the deployed projections are checked
    reading.catch(() => {});                                      // an unknown projection leaves it unread
    const projector = await this.deployedProjector();
    const found = projector.projections[projection];
    if (!found) throw new errors.UnknownProjectionError('there is no deployed projection ' + projection);
    if (found.kind !== 'stream') {
      throw new errors.ProjectionError('live aggregation folds one stream, and ' + projection + ' is a ' + found.kind +
        ' projection: use a projectStream projection', { projection: projection });
    }
    const [head] = await reading;
    if (head && head.archived && !includeArchived) {  // (as Python's live fold: docs/lifecycle.md)
      throw new errors.StreamArchivedError('stream ' + JSON.stringify(id) + ' is archived: fold it with ' +
        '{includeArchived: true}, or unarchive it', { streamId: id });
    }
    // A stream of another type: none of its events goes to the projection.
    if (!head || head.version === '0' || head.type !== found.streamType) return null;
    // Pages of versions (after, after + LIVE_PAGE_SIZE], up to the stream's version read first: versions commit
    // in order, so those up to it are all there and never change, and each page can be read on its own.
    const until = BigInt(head.version), type = JSON.stringify(head.type), size = BigInt(LIVE_PAGE_SIZE);
    let next = 0n;
    const read = () => {
      const after = next;
      next = after + size < until ? after + size : until;
      const page = this.query(this.liveQueries_.page, [id, type, String(after), String(next)]);
      page.catch(() => {});                                       // a fold that throws leaves it unread
      return page;
    };
    const pages = [];
    while (pages.length < LIVE_READ_AHEAD && next < until) pages.push(read());
    let document = null;
    while (pages.length > 0) {
      const [{ lines }] = await pages.shift();
      if (next < until) pages.push(read());
      if (lines !== null) document = foldLines(projector, projection, id, lines, document);
    }
    return document;
  }

  // The deployed projections loaded into a projector of their own, again when a deploy moved the generation.
  async deployedProjector() {
    const [{ generation }] = await this.query('select generation::text from ' + this.sql + '.pge_engine');
    if (this.live_ && this.live_.generation === generation) return this.live_.projector;
    const sources = await this.query('select file, source from ' + this.sql + '.pge_deployed_files()');
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
