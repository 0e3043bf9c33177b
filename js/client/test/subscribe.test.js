'use strict';
// Subscriptions from Node against a real store (JSPROJ_TEST_DSN, made by tests/cli/test_node_client.py):
// the checkpoint, exactly once with the consumer's own writes, the lease, stopping, waking, reconnecting.
// Every wait is on a condition, with a deadline.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { spawn } = require('child_process');
const { connect, errors } = require('..');

const DSN = process.env.JSPROJ_TEST_DSN;
if (!DSN) throw new Error('set JSPROJ_TEST_DSN to a store with the quest example deployed (tests/cli/test_node_client.py does)');

const LOCK_CLASS = 1246974040;
const DEADLINE_MS = 20000;
// Names of this run's own (subscriptions, stream types, tables): a run again on the same database starts afresh.
const RUN = '_' + Date.now().toString(36);
const own = (name) => name + RUN;
const store = connect({ dsn: DSN });
test.after(() => store.close());

async function waitFor(what, condition) {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function sql(text, values) {
  return store.query(text, values);
}

// Append `count` events of type `type` to streams of type `streamType` in one transaction: their ids, in order.
async function appendSome(streamType, type, count, from = 0) {
  const messages = [];
  for (let n = from; n < from + count; n++) messages.push({ id: `${streamType}-${n % 3}`, type: streamType, data: { $type: type, n } });
  const positions = (await store.appendAll(messages)).flatMap((appended) => appended.positions);
  return (await sql('select id::text from pge_events where position = any($1) order by position', [positions])).map((r) => r.id);
}

// `promise`'s value, or null when `ms` pass first.
async function within(promise, ms) {
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(resolve, ms, null); });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function checkpoint(name) {
  const rows = await sql('select last_position::int as position, events::int as events, status from pge_subscriptions where name = $1', [name]);
  return rows[0] || null;
}

// Whether no one holds subscription `name`'s lease: take it from another connection (and give it back).
async function leaseFree(name) {
  const client = await store.pool.connect();
  try {
    const [{ held }] = (await client.query('select pg_try_advisory_lock($1, hashtext($2)) as held', [LOCK_CLASS, 'public.' + name])).rows;
    if (held) await client.query('select pg_advisory_unlock($1, hashtext($2))', [LOCK_CLASS, 'public.' + name]);
    return held;
  } finally {
    client.release();
  }
}

async function runnerConnections(name) {
  const rows = await sql("select count(*)::int as n from pg_stat_activity where application_name = $1", ['jsproj subscriber ' + name]);
  return rows[0].n;
}

// Every event the subscription delivers until it caught up, by id.
async function drain(subscription, each = async () => {}) {
  const seen = [];
  for await (const delivery of subscription) {
    await each(delivery);
    seen.push(delivery.event.eventId);
  }
  return seen;
}

test('a subscription delivers the log in order, filtered, then resumes from its checkpoint', { timeout: 60000 }, async () => {
  const wanted = await appendSome(own('Order'), 'Placed', 5);
  await appendSome(own('Order'), 'Shipped', 3);
  const options = { eventTypes: ['Placed'], streamTypes: own('Order'), untilCaughtUp: true, pageSize: 2 };
  const first = await drain(store.subscribe(own('orders'), options), async ({ event }) => {
    assert.equal(event.type, 'Placed');
    assert.equal(event.streamType, own('Order'));
    assert.equal(typeof event.data.n, 'number');
  });
  assert.deepEqual(first, wanted);
  const log = (await store.readAll({ limit: 100000 })).filter((e) => e.type === 'Placed' && e.streamType === own('Order'));
  assert.deepEqual(first, log.map((e) => e.eventId), "in read_all's order");
  const row = await checkpoint(own('orders'));
  assert.equal(row.events, 5);
  assert.equal(row.position, (await store.readAll({ limit: 100000 })).pop().position, 'past the events left out too');
  const more = await appendSome(own('Order'), 'Placed', 2, 5);
  assert.deepEqual(await drain(store.subscribe(own('orders'), options)), more, 'a new run goes on from the checkpoint: nothing twice');
  assert.equal((await checkpoint(own('orders'))).events, 7);
});

for (const transaction of ['page', 'event']) {
  test(`leaving the loop undoes the held event's writes; the next run hands it over again: exactly once (${transaction})`, { timeout: 60000 }, async () => {
    const table = own('booked_' + transaction);
    await sql(`create table ${table} (event_id uuid primary key)`);
    const ids = await appendSome(own('Book' + transaction), 'Booked', 5);
    const options = { streamTypes: [own('Book' + transaction)], transaction, pageSize: 10, untilCaughtUp: true };
    const book = ({ event, client }) => client.query(`insert into ${table} values ($1)`, [event.eventId]);
    let handled = 0;
    await assert.rejects(drain(store.subscribe(own('book-' + transaction), options), async (delivery) => {
      await book(delivery);
      if (++handled === 3) throw new Error('the third fails after its write');
    }), /the third fails/);
    const written = (await sql(`select event_id::text as id from ${table}`)).map((r) => r.id).sort();
    assert.deepEqual(written, ids.slice(0, 2).sort(), 'the two before it committed, its own write undone');
    assert.equal((await checkpoint(own('book-' + transaction))).events, 2);
    assert.deepEqual(await drain(store.subscribe(own('book-' + transaction), options), book), ids.slice(2));
    const all = (await sql(`select event_id::text as id from ${table}`)).map((r) => r.id).sort();
    assert.deepEqual(all, ids.slice().sort(), 'each event written once');
  });
}

test('one consumer per name: a second waits, and takes over when the first breaks out, which gives the lease back', { timeout: 60000 }, async () => {
  const ids = await appendSome(own('Lease'), 'Leased', 3);
  const options = { streamTypes: [own('Lease')], pollInterval: 0.05 };
  const first = store.subscribe(own('lease'), options)[Symbol.asyncIterator]();
  const held = await first.next();
  assert.equal(held.value.event.eventId, ids[0]);
  assert.equal(await leaseFree(own('lease')), false, 'the first holds the lease');
  const second = store.subscribe(own('lease'), Object.assign({ log: () => {} }, options));
  const iterator = second[Symbol.asyncIterator]();
  let delivered = null;
  const pending = iterator.next().then((result) => { delivered = result; return result; });
  await waitFor('the second to wait for the lease', () => second.waiting);
  assert.equal(delivered, null, 'nothing while the first holds it');
  const third = store.subscribe(own('lease'), Object.assign({ log: () => {} }, options));
  const thirdNext = third[Symbol.asyncIterator]().next();
  await waitFor('a third to wait too', () => third.waiting);
  third.stop();
  assert.deepEqual(await thirdNext, { done: true, value: undefined }, 'stop() ends a run waiting for the lease');
  await first.return();  // what `break` does
  assert.equal((await pending).value.event.eventId, ids[0], 'the event the first held, handed over again');
  assert.equal(second.waiting, false);
  await iterator.return();
  assert.equal(await leaseFree(own('lease')), true, 'breaking out gave the lease back');
  await waitFor('the runners to disconnect', async () => (await runnerConnections(own('lease'))) === 0);
  assert.equal((await checkpoint(own('lease'))).events, 0, 'nothing handled: each run left holding the first event');
});

test('a consumer killed mid-page: another takes over from the checkpoint, its uncommitted writes undone', { timeout: 60000 }, async () => {
  const [table, name, streamType] = [own('booked_crash'), own('crash'), own('Crash')];
  await sql(`create table ${table} (event_id uuid primary key, pid int not null)`);
  const child = spawn(process.execPath, ['-e', `
    const { connect } = require(${JSON.stringify(path.resolve(__dirname, '..'))});
    (async () => {
      const store = connect({ dsn: process.env.JSPROJ_TEST_DSN });
      let n = 0;
      for await (const { event, client } of store.subscribe('${name}', { streamTypes: ['${streamType}'], pageSize: 2, start: 'end' })) {
        await client.query('insert into ${table} values ($1, $2)', [event.eventId, process.pid]);
        if (++n === 3) console.log('holding ' + event.eventId);
        if (n === 3) await new Promise(() => {});
      }
    })();`], { env: Object.assign({}, process.env), stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk) => { out += chunk; });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    await waitFor('the child to register', () => checkpoint(name));
    const ids = await appendSome(streamType, 'Booked', 6);  // one transaction: pages of 2 from the first
    await waitFor('the child to hold its third event', () => out.includes('holding'));
    assert.equal(out.trim(), 'holding ' + ids[2]);
    assert.equal((await checkpoint(name)).events, 2, 'its first page committed, not the second');
    const taker = store.subscribe(name, { streamTypes: [streamType], untilCaughtUp: true, log: () => {} });
    const taking = drain(taker, ({ event, client }) => client.query(`insert into ${table} values ($1, $2)`, [event.eventId, process.pid]));
    await waitFor('the taker to wait for the lease', () => taker.waiting);
    child.kill('SIGKILL');
    await exited;
    assert.deepEqual(await taking, ids.slice(2), 'from the checkpoint: the event it held again, then the rest');
    const rows = await sql(`select event_id::text as id, pid from ${table} order by id`);
    assert.deepEqual(rows.map((r) => r.id), ids.slice().sort(), 'each event booked once');
    assert.deepEqual(rows.filter((r) => r.pid === child.pid).map((r) => r.id).sort(), ids.slice(0, 2).sort());
  } finally {
    child.kill('SIGKILL');
  }
});

test('stop() ends the loop after the current event, which counts as handled; start: end skips the past', { timeout: 60000 }, async () => {
  await appendSome(own('Stop'), 'Before', 2);
  const subscription = store.subscribe(own('stopper'), { streamTypes: [own('Stop')], start: 'end', pollInterval: 0.05 });
  const seen = [];
  const run = drain(subscription, async ({ event }) => {
    seen.push(event.type);
    if (event.data.n === 1) subscription.stop();
  });
  await waitFor('the subscription to register', () => checkpoint(own('stopper')));
  await appendSome(own('Stop'), 'After', 3);
  await run;
  assert.deepEqual(seen, ['After', 'After'], 'only events after it registered, and none after stop()');
  assert.equal((await checkpoint(own('stopper'))).events, 2);
  const [next] = await drain(store.subscribe(own('stopper'), { streamTypes: [own('Stop')], untilCaughtUp: true }), async ({ event }) => {
    assert.equal(event.data.n, 2);
  });
  assert.ok(next);
});

test('an idle subscription wakes on the notification of an append, not on its poll', { timeout: 60000 }, async () => {
  const subscription = store.subscribe(own('waker'), { streamTypes: [own('Wake')], start: 'end', pollInterval: 600 });
  const iterator = subscription[Symbol.asyncIterator]();
  const next = iterator.next();
  await waitFor('the run to idle after reading an empty page', async () => (await sql(`select count(*)::int as n from pg_stat_activity
    where application_name = $1 and state = 'idle' and query like 'select tx, position, wanted, %'`, ['jsproj subscriber ' + own('waker')]))[0].n === 1);  // the page's query
  const [id] = await appendSome(own('Wake'), 'Rang', 1);
  const woken = await within(next, DEADLINE_MS);
  assert.ok(woken, 'delivered within the deadline, far before the 600 s poll');
  assert.equal(woken.value.event.eventId, id);
  await iterator.return();
});

test('a lost connection reconnects and resumes from the checkpoint', { timeout: 60000 }, async () => {
  const said = [];
  const subscription = store.subscribe(own('survivor'), { streamTypes: [own('Survive')], pollInterval: 0.05, log: (m) => said.push(m) });
  const iterator = subscription[Symbol.asyncIterator]();
  const [first] = await appendSome(own('Survive'), 'Lived', 1);
  assert.equal((await iterator.next()).value.event.eventId, first);
  const next = iterator.next();  // the first is handled; the run idles on its connection
  await waitFor('the first to be committed', async () => (await checkpoint(own('survivor'))).events === 1);
  await sql('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', ['jsproj subscriber ' + own('survivor')]);
  const [second] = await appendSome(own('Survive'), 'Lived', 1, 1);
  assert.equal((await next).value.event.eventId, second);
  assert.ok(said.some((m) => m.startsWith(own('survivor') + ': lost the database')), said.join('\n'));
  await iterator.return();
  assert.equal((await checkpoint(own('survivor'))).events, 1, 'the second was held when the loop left: not handled');
});

test('a checkpoint reset under a run: its page is undone and it reads again from the reset checkpoint', { timeout: 60000 }, async () => {
  const [id] = await appendSome(own('Reset'), 'Once', 1);
  const said = [];
  const iterator = store.subscribe(own('reset'), { streamTypes: [own('Reset')], pageSize: 1, log: (m) => said.push(m) })[Symbol.asyncIterator]();
  assert.equal((await iterator.next()).value.event.eventId, id);
  await sql("update pge_subscriptions set last_tx = '0', last_position = 0 where name = $1", [own('reset')]);
  assert.equal((await iterator.next()).value.event.eventId, id, 'handed over again from the start');
  assert.ok(said.some((m) => /the checkpoint moved under this runner/.test(m)), said.join('\n'));
  await iterator.return();
  assert.equal((await checkpoint(own('reset'))).events, 0);
});

test('bad names and options are errors before anything runs', () => {
  assert.throws(() => store.subscribe('a b'), (e) => e instanceof errors.InvalidNameError && /subscription name "a b"/.test(e.message));
  assert.throws(() => store.subscribe('ok', { eventType: 'X' }), (e) => e instanceof errors.InputError && /no option eventType/.test(e.message));
  assert.throws(() => store.subscribe('ok', { transaction: 'batch' }), errors.InputError);
  assert.throws(() => store.subscribe('ok', { eventTypes: [] }), errors.InputError);
  assert.throws(() => store.subscribe('ok', { pollInterval: 0 }), errors.InputError);
  const pooled = connect({ pool: { query: async () => ({ rows: [] }), end: async () => {} } });
  assert.throws(() => pooled.subscribe('ok'), (e) => e instanceof errors.InputError && /dsn/.test(e.message));
});
