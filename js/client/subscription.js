'use strict';
// Subscriptions from Node: Python's jsproj.subscribe (src/jsproj/follow/subscriptions.py and
// subscriber.py, docs/subscriptions.md) as an async iterator. The same row of pge_subscriptions
// holds the checkpoint, registered by the same pge_add_subscription, moved with the same
// compare-and-set in the transaction the consumer's own writes go in (`client`): exactly once
// for those, at least once for anything else. The same lease (a session advisory lock, class
// LOCK_CLASS, on the one connection the run reads, delivers and commits on): one consumer per
// name, another takes over when it dies. The same page of the log, in the gap-safe order
// (log.js), woken by the same NOTIFY channel, polling as Python's runners do.
//
//   for await (const { event, client } of store.subscribe('invoiced', { eventTypes: ['Issued'] })) { ... }
//
// An event is handled when the loop asks for the next one. Leaving the loop (break, return, a
// throw) while holding one undoes what `client` wrote for it and hands it over again next time;
// the events before it commit. subscription.stop() ends the loop after the current event instead.

const { Client } = require('pg');
const errors = require('./errors');
const { RecordedEvent, gapSafeAfter, eventColumns } = require('./log');

const LOCK_CLASS = 1246974040; // jsproj.follow.subscriber.LOCK_CLASS: advisory locks (LOCK_CLASS, hashtext(schema.name))
const NAME = /^[A-Za-z_][A-Za-z0-9_.:-]{0,99}$/;
const SCAN_FACTOR = 10; // a page reads at most this many times pageSize events when filters leave some out
const BRISK_MS = 2000; // after work, poll every BRISK_POLL_MS this long (appends that did not notify)
const BRISK_POLL_MS = 10;
const CHANNEL = 'pge_events'; // what the notify trigger of pge_events says (sql/functions/async.sql)
const BACKOFF_SECONDS = [0.1, 5]; // reconnecting: the first wait, and the longest
const SAVEPOINT = 'jsproj_event';
const DONE = Object.freeze({ done: true, value: undefined });
const DEFAULTS = { eventTypes: null, streamTypes: null, pageSize: 100, transaction: 'page', start: 'beginning',
  pollInterval: 1, untilCaughtUp: false, log: null };
// The driver's and PostgreSQL's ways of saying the connection went away (not the work at fault): connect again.
const LOST_CODES = ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOENT', 'ETIMEDOUT', '57P01', '57P02', '57P03'];

const HIGH_WATER = 'select e.tx_id::text as tx, e.position from pge_events e order by e.tx_id desc, e.position desc limit 1';
const CHECKPOINT = `update pge_subscriptions set status = 'running', updated_at = now() where name = $1
  returning last_tx::text as tx, last_position`;
const MOVE = `update pge_subscriptions
  set last_tx = $1::xid8, last_position = $2, events = events + $3, status = 'running', error = null, updated_at = now()
  where name = $4 and last_tx = $5::xid8 and last_position = $6`;

// The next page after a checkpoint ($1, $2): every event read (so that the checkpoint moves past those the
// filters leave out, at most $3), the data only of those wanted ($4 event types, $5 stream types), up to the
// $6-th wanted one. Python's subscriber page (src/jsproj/follow/subscriber.py), the same query.
function pageQuery(sql) {
  return `select tx, position, wanted, event_id, stream_id, stream_type, version, type, data, metadata, timestamp
    from (select r.tx, r.position, w.wanted, r.event_id, r.stream_id, r.stream_type, r.version, r.type,
                 case when w.wanted then r.data end as data, case when w.wanted then r.metadata end as metadata,
                 r.timestamp, count(*) filter (where w.wanted) over (order by r.tx_id, r.position) as wanted_before
          from (select r.tx_id, r.tx_id::text as tx, ${eventColumns('r')}
                from ${sql}.pge_records() r
                where ${gapSafeAfter(sql, 'r', '$1', '$2')}
                order by r.tx_id, r.position
                limit $3) as r
          cross join lateral (select ($4::text[] is null or r.type = any($4::text[]))
                                 and ($5::text[] is null or r.stream_type = any($5::text[])) as wanted) as w) as page
    where wanted_before <= $6
    order by tx::xid8, position`;
}

function names(given, option) {
  if (given === null || given === undefined) return null;
  const list = typeof given === 'string' ? [given] : given;
  if (!Array.isArray(list) || !list.length || !list.every((t) => typeof t === 'string' && t)) {
    throw new errors.InputError(`subscribe: ${option} is a non-empty list of names (or null: any)`);
  }
  return list.slice();
}

function checkOptions(given) {
  const unknown = Object.keys(given || {}).filter((key) => !(key in DEFAULTS));
  if (unknown.length) throw new errors.InputError(`subscribe: no option ${unknown[0]} (options: ${Object.keys(DEFAULTS).join(', ')})`);
  const o = Object.assign({}, DEFAULTS, given);
  const bad = (what) => { throw new errors.InputError('subscribe: ' + what); };
  if (!Number.isSafeInteger(o.pageSize) || o.pageSize < 1) bad('pageSize must be a whole number of at least 1');
  if (!['page', 'event'].includes(o.transaction)) bad(`transaction must be 'page' or 'event', not ${JSON.stringify(o.transaction)}`);
  if (!['beginning', 'end'].includes(o.start)) bad(`start must be 'beginning' or 'end', not ${JSON.stringify(o.start)}`);
  if (typeof o.pollInterval !== 'number' || !(o.pollInterval > 0)) bad('pollInterval must be a positive number of seconds');
  if (o.log !== null && typeof o.log !== 'function') bad('log must be a function of a message');
  return Object.assign(o, { eventTypes: names(o.eventTypes, 'eventTypes'), streamTypes: names(o.streamTypes, 'streamTypes'),
    untilCaughtUp: Boolean(o.untilCaughtUp) });
}

function isLost(error) {
  if (error instanceof errors.JsprojError) return false;
  const code = error && error.code;
  if (typeof code === 'string') return code.startsWith('08') || LOST_CODES.includes(code);
  return /Connection terminated|is not queryable/.test(String(error && error.message));
}

const same = (a, b) => a.tx === b.tx && a.position === b.position;
const reached = (at, target) => BigInt(at.tx) > BigInt(target.tx) || (at.tx === target.tx && at.position >= target.position);
const firstLine = (error) => String((error && error.message) || error).split('\n')[0];

// The checkpoint was not where this run read it (a reset meanwhile): the transaction is undone, the checkpoint read again.
class Moved extends Error {}

// A subscription: an async iterable of {event, client}; each `for await` over it is a run, from the checkpoint.
class Subscription {
  constructor(store, name, options) {
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new errors.InvalidNameError(`subscription name ${JSON.stringify(name)} is not valid: use letters, digits and ` +
        '_ . : -, start with a letter or _, at most 100 characters');
    }
    this.store = store;
    this.name = name;
    this.options = checkOptions(options);
    this.connection = store.connectionConfig();
    this.runs = new Set();
  }

  [Symbol.asyncIterator]() {
    const run = new Run(this);
    this.runs.add(run);
    return run;
  }

  // End every run of it after the event it holds (safe from a signal handler or the loop's body).
  stop() {
    this.runs.forEach((run) => run.stop());
  }

  // Whether a run waits for the lease another consumer holds.
  get waiting() {
    return Array.from(this.runs).some((run) => run.waiting);
  }
}

class Run {
  constructor(subscription) {
    this.sub = subscription;
    this.options = subscription.options;
    this.sql = subscription.store.sql;
    this.pageText = pageQuery(this.sql);
    Object.assign(this, { conn: null, at: null, done: null, page: [], inTx: false, handled: 0, current: null, target: null,
      finished: false, stopping: false, waiting: false, moved: false, notified: false, wake: null, lastWork: 0,
      backoff: BACKOFF_SECONDS[0], tail: Promise.resolve() });
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  next() {
    return this.serial(() => this.step());
  }

  // Leaving the loop: the event it holds is undone (handed over again), those before it commit.
  return() {
    this.stop();
    return this.serial(async () => {
      if (!this.finished) await this.finish(true);
      return DONE;
    });
  }

  stop() {
    this.stopping = true;
    this.wakeUp();
  }

  serial(work) {
    const result = this.tail.then(work);
    this.tail = result.catch(() => {});
    return result;
  }

  async step() {
    if (this.finished) return DONE;
    for (;;) {
      try {
        const delivery = await this.advance();
        if (delivery) return { done: false, value: delivery };
        await this.finish(true);
        return DONE;
      } catch (e) {
        if (e instanceof Moved) {
          this.moved = true;
        } else if (isLost(e) && !this.stopping) {
          await this.reconnectLater(e);
        } else {
          await this.finish(false);
          if (isLost(e)) return DONE;
          throw errors.translate(e);
        }
      }
    }
  }

  // The next event to deliver, or null when the run ends (stopped, or caught up with untilCaughtUp).
  async advance() {
    if (this.moved) await this.reread();  // before all else: the held event's transaction is undone
    if (this.current) await this.acknowledge();
    for (;;) {
      if (this.stopping) return null;
      if (!this.conn) await this.attach();
      if (!this.at && !(await this.acquire())) {
        await this.pause(Math.min(this.options.pollInterval, 1) * 1000);
        continue;
      }
      const row = await this.take();
      this.backoff = BACKOFF_SECONDS[0];
      if (row) return this.deliver(row);
      if (this.options.untilCaughtUp && reached(this.at, this.target)) return null;
      await this.pause(Date.now() - this.lastWork < BRISK_MS ? Math.min(BRISK_POLL_MS, this.options.pollInterval * 1000)
        : this.options.pollInterval * 1000);
    }
  }

  async query(text, values) {
    return (await this.conn.query(text, values)).rows;
  }

  // Connect and register the subscription (its filters updated, its checkpoint kept); the target of untilCaughtUp.
  async attach() {
    const conn = new Client(Object.assign({}, this.sub.connection, {
      application_name: ('jsproj subscriber ' + this.sub.name).slice(0, 63), connectionTimeoutMillis: 10000 }));
    conn.on('error', () => this.wakeUp());  // a connection lost while idle: the next query says so
    conn.on('notification', () => { this.notified = true; this.wakeUp(); });
    try {
      await conn.connect();
      await conn.query('set search_path = ' + this.sql);
      const o = this.options;
      await conn.query('select pge_add_subscription($1, $2::text[], $3::text[], $4)',
        [this.sub.name, o.eventTypes, o.streamTypes, o.start === 'end']);
      if (o.untilCaughtUp && !this.target) {
        const [last] = (await conn.query(HIGH_WATER)).rows;
        this.target = last ? { tx: last.tx, position: Number(last.position) } : { tx: '0', position: 0 };
      }
    } catch (e) {
      conn.end().catch(() => {});
      throw e;
    }
    this.conn = conn;
  }

  // Take the lease and read the checkpoint; false (said once) while another consumer holds it.
  async acquire() {
    // pge_subscription_lease: the lock (LOCK_CLASS, hashtext(schema.name)), taken as the store's owner
    const [{ held }] = await this.query('select ' + this.sql + '.pge_subscription_lease($1, true) as held', [this.sub.name]);
    if (!held) {
      if (!this.waiting) this.log('another runner holds it; waiting to take over');
      this.waiting = true;
      return false;
    }
    await this.query('listen ' + CHANNEL);
    if (this.waiting) this.log('took over');
    this.waiting = false;
    this.at = this.done = await this.checkpoint();
    return true;
  }

  async checkpoint() {
    const rows = await this.query(CHECKPOINT, [this.sub.name]);
    if (!rows.length) throw new errors.StoreError(`subscription ${this.sub.name} was deleted while its runner held it`);
    return { tx: rows[0].tx, position: Number(rows[0].last_position) };
  }

  async reread() {
    this.log('the checkpoint moved under this runner (a reset?); reading it again');
    if (this.inTx) await this.query('rollback');
    Object.assign(this, { inTx: false, page: [], current: null, handled: 0, moved: false });
    if (this.at) this.at = this.done = await this.checkpoint();
  }

  // The next wanted row of the page, reading pages (and committing the one done) as needed; null when there is none.
  async take() {
    for (;;) {
      const row = this.page.shift();
      if (row && row.event) return row;
      if (row) {
        this.done = row.at;  // left out by the filters: the checkpoint moves past it
        continue;
      }
      await this.endPage();
      if (this.options.untilCaughtUp && reached(this.at, this.target)) return null;
      this.page = await this.read();
      if (!this.page.length) return null;
      if (this.options.transaction === 'page') {
        await this.query('begin');
        this.inTx = true;
      }
    }
  }

  async read() {
    const o = this.options;
    const scan = o.pageSize * (o.eventTypes || o.streamTypes ? SCAN_FACTOR : 1);
    this.notified = false;
    const rows = await this.query(this.pageText, [this.at.tx, this.at.position, scan, o.eventTypes, o.streamTypes, o.pageSize]);
    return rows.map((r) => ({ at: { tx: r.tx, position: Number(r.position) }, event: r.wanted ? new RecordedEvent(r) : null }));
  }

  // Hand `row` over in a savepoint ('page') or a transaction of its own ('event').
  async deliver(row) {
    if (this.options.transaction === 'page') {
      await this.query('savepoint ' + SAVEPOINT);
    } else {
      await this.query('begin');
      this.inTx = true;
    }
    this.current = row;
    return { event: row.event, client: this.conn };
  }

  // The held event is handled: kept in the page's transaction, or committed with the checkpoint ('event').
  async acknowledge() {
    const row = this.current;
    if (this.options.transaction === 'page') {
      await this.query('release savepoint ' + SAVEPOINT);
      this.handled += 1;
    } else {
      await this.move(this.at, row.at, 1);
      await this.query('commit');
      Object.assign(this, { inTx: false, at: row.at });
    }
    Object.assign(this, { done: row.at, current: null, lastWork: Date.now() });
  }

  // Commit the page: the checkpoint moved to the last event done, with what the consumer wrote.
  async endPage() {
    if (!this.at || (same(this.done, this.at) && !this.inTx)) return;  // no lease, or nothing to commit
    if (!this.inTx) await this.query('begin');
    this.inTx = true;
    if (!same(this.done, this.at)) await this.move(this.at, this.done, this.handled);
    await this.query('commit');
    Object.assign(this, { inTx: false, at: this.done, handled: 0 });
  }

  // The compare-and-set of the checkpoint: only from where this run read it.
  async move(from, to, handled) {
    const result = await this.conn.query(MOVE, [to.tx, to.position, handled, this.sub.name, from.tx, from.position]);
    if (result.rowCount !== 1) throw new Moved(this.sub.name);
  }

  // The run ends: the held event undone, what was handled committed (`keep`) or not, the lease given back.
  async finish(keep) {
    Object.assign(this, { finished: true, stopping: true });
    this.sub.runs.delete(this);
    if (!this.conn) return;
    try {
      if (this.current) await this.query(this.options.transaction === 'page' ? 'rollback to savepoint ' + SAVEPOINT : 'rollback');
      if (this.current && this.options.transaction === 'event') this.inTx = false;
      this.current = null;
      if (keep) await this.endPage();
      else if (this.inTx) await this.query('rollback');
      if (this.at) await this.query('select ' + this.sql + '.pge_subscription_lease($1, false)', [this.sub.name]);
    } catch (e) {
      // The connection is gone, or the checkpoint moved: nothing uncommitted stays, it is handed over again.
    }
    await this.drop();
  }

  // Close the connection (the lease and the transaction in flight go with it).
  drop() {
    const conn = this.conn;
    Object.assign(this, { conn: null, at: null, done: null, page: [], inTx: false, handled: 0, current: null, moved: false,
      notified: false });
    return conn ? conn.end().catch(() => {}) : Promise.resolve();
  }

  async reconnectLater(error) {
    this.log(`lost the database (${firstLine(error)}); reconnecting in ${this.backoff} s`);
    await this.drop();
    await this.pause(this.backoff * 1000);
    this.backoff = Math.min(this.backoff * 2, BACKOFF_SECONDS[1]);
  }

  // Until `ms` have passed, a notification came, the connection failed, or stop().
  pause(ms) {
    if (this.stopping || this.notified) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.wakeUp(), ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
    });
  }

  wakeUp() {
    if (this.wake) this.wake();
  }

  log(message) {
    if (this.options.log) this.options.log(`${this.sub.name}: ${message}`);
  }
}

module.exports = { Subscription, LOCK_CLASS };
