'use strict';
// Reading as Python's library does, against a real store (JSPROJ_TEST_DSN, made by
// tests/cli/test_node_client.py with the quest example deployed): the log in the
// gap-safe order (readAll), and views by field (views(name).find/count/get).

const test = require('node:test');
const assert = require('node:assert/strict');
const { connect, errors, RecordedEvent } = require('..');

const DSN = process.env.JSPROJ_TEST_DSN;
if (!DSN) throw new Error('set JSPROJ_TEST_DSN to a store with the quest example deployed (tests/cli/test_node_client.py does)');

const store = connect({ dsn: DSN });
test.after(() => store.close());

const DEADLINE_MS = 20000;
// Stream ids of this run's own: a run again on the same database starts afresh.
const RUN = '-' + Date.now().toString(36);
const own = (id) => id + RUN;

// The position of the last event a gap-safe reader sees now (0: none), read page by page.
async function end() {
  let after = 0;
  for (let page = await store.readAll({ limit: 500 }); page.length; page = await store.readAll({ after, limit: 500 })) {
    after = page[page.length - 1].position;
  }
  return after;
}

// readAll after `after` once it has `count` events: a transaction of another database of the cluster may hold
// the gap-safe end back for a moment (pytest runs tests in parallel), so wait for it, with a deadline.
async function readUntil(after, count) {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const events = await store.readAll({ after });
    if (events.length >= count || Date.now() > deadline) return events;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('readAll reads the log in order, page by page, as recorded events', async () => {
  const start = await end();
  await store.append(own('read-1'), 'Ledger', [{ $type: 'Opened', owner: 'Ann' }, { $type: 'Paid', amount: 3 }], { metadata: { by: 'test' } });
  await store.append(own('read-2'), 'Ledger', { $type: 'Opened', owner: 'Bo' });
  const events = await readUntil(start, 3);
  assert.deepEqual(events.map((e) => [e.streamId, e.version, e.type]), [[own('read-1'), 1, 'Opened'], [own('read-1'), 2, 'Paid'], [own('read-2'), 1, 'Opened']]);
  const [first] = events;
  assert.ok(first instanceof RecordedEvent);
  assert.equal(first.streamType, 'Ledger');
  assert.deepEqual(first.data, { owner: 'Ann' });
  assert.deepEqual(first.metadata, { by: 'test' });
  assert.ok(first.timestamp instanceof Date && !Number.isNaN(first.timestamp.getTime()));
  assert.deepEqual(first.event, { $type: 'Opened', $id: first.eventId, owner: 'Ann' });
  assert.ok(events[0].position < events[1].position && events[1].position < events[2].position);
  const paged = await store.readAll({ after: start, limit: 2 });
  assert.deepEqual(paged.map((e) => e.eventId), events.slice(0, 2).map((e) => e.eventId));
  const rest = await store.readAll({ after: paged[1].position });
  assert.deepEqual(rest.map((e) => e.eventId), [events[2].eventId]);
  assert.deepEqual(await store.readAll({ after: events[2].position }), []);
});

test('readAll never passes a transaction still running: the later position that commits first waits for it', async () => {
  const start = await end();
  const slow = await store.pool.connect();
  try {
    await slow.query('begin');
    const [{ r: early }] = (await slow.query('select pge_append($1::jsonb) as r',
      [JSON.stringify({ id: own('gap-early'), type: 'Gap', data: { $type: 'Noted' } })])).rows;
    const late = await store.append(own('gap-late'), 'Gap', { $type: 'Noted' });  // committed, a later position
    assert.ok(late.positions[0] > early.positions[0]);
    assert.deepEqual(await store.readAll({ after: start }), [], 'nothing past the open transaction');
    await slow.query('commit');
    const events = await readUntil(start, 2);
    assert.deepEqual(events.map((e) => [e.streamId, e.position]), [[own('gap-early'), early.positions[0]], [own('gap-late'), late.positions[0]]]);
  } finally {
    slow.release();
  }
});

test('readAll reads by event types, stream types, append time and metadata, combined, in pages', async () => {
  const [Opened, Paid, Shop, Bank] = ['Opened', 'Paid', 'Shop', 'Bank'].map(own);
  await store.append(own('f-1'), Shop, [{ $type: Opened }, { $type: Paid, amount: 1 }], { metadata: { user: 'ann', tags: ['a'] } });
  await store.append(own('f-2'), Bank, { $type: Paid, amount: 2 });
  await store.append(own('f-1'), null, { $type: Paid, amount: 3 }, { metadata: { user: 'bo' } });
  const deadline = Date.now() + DEADLINE_MS;  // another database's transaction may hold the gap-safe end back a moment
  let all = [];
  while (all.length < 4 && Date.now() < deadline) all = await store.readAll({ streamTypes: [Shop, Bank], limit: 100 });
  assert.deepEqual(all.map((e) => [e.streamId, e.type]), [[own('f-1'), Opened], [own('f-1'), Paid], [own('f-2'), Paid], [own('f-1'), Paid]]);
  assert.ok(all.every((e) => e.appendedAt instanceof Date));
  const paid = (filters) => store.readAll(filters).then((page) => page.map((e) => e.data.amount));
  assert.deepEqual(await paid({ types: Paid }), [1, 2, 3]);
  assert.deepEqual(await paid({ types: [Paid, Opened], streamTypes: Bank }), [2]);
  assert.deepEqual(await paid({ types: Paid, metadata: { user: 'ann', tags: ['a'] } }), [1]);
  assert.deepEqual(await paid({ types: Paid, since: all[2].appendedAt }), [2, 3]);
  assert.deepEqual(await paid({ types: Paid, since: all[2].appendedAt.toISOString(), until: all[3].appendedAt }), [2]);
  const first = await store.readAll({ types: Paid, limit: 2 });
  assert.deepEqual(await paid({ types: Paid, after: first[1].position }), [3]);
});

test('readAll leaves the events of archived streams out unless asked for', async () => {
  const id = own('archived');
  await store.append(id, 'Ledger', [{ $type: 'Opened', owner: 'Cy' }, { $type: 'Paid', amount: 9 }]);
  await store.query(`select ${store.sql}.pge_archive_stream($1)`, [id]);
  const after = 0;
  const deadline = Date.now() + DEADLINE_MS;
  let all = [];
  while (Date.now() < deadline) {  // (the gap-safe end may wait for another test's transaction a moment)
    all = await store.readAll({ after, limit: 100000, streamTypes: 'Ledger', includeArchived: true });
    if (all.some((e) => e.streamId === id)) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(all.filter((e) => e.streamId === id).length, 2);
  const shown = await store.readAll({ after, limit: 100000, streamTypes: 'Ledger' });
  assert.equal(shown.filter((e) => e.streamId === id).length, 0);
  await assert.rejects(store.readAll({ includeArchived: 'yes' }), errors.LogFilterError);
  await assert.rejects(store.append(id, 'Ledger', { $type: 'Paid', amount: 1 }), errors.StreamArchivedError);
  await assert.rejects(store.live('Party', id), errors.StreamArchivedError);
  assert.equal(await store.fetchStream(id), null, 'the spike\'s fetchStream reads an archived stream as none');
});

test('readAll refuses bad filters, naming the option, before anything is read', async () => {
  const refused = (options, option, says) => assert.rejects(store.readAll(options),
    (e) => e instanceof errors.LogFilterError && e instanceof errors.InputError && e.option === option && says.test(e.message));
  await refused({ types: [] }, 'types', /non-empty list/);
  await refused({ streamTypes: [''] }, 'streamTypes', /1-255 characters/);
  await refused({ types: Array.from({ length: 33 }, (_, n) => 'T' + n) }, 'types', /at most 32/);
  await refused({ since: 'yesterday' }, 'since', /with a zone/);
  await refused({ until: '2026-01-05T08:00:00' }, 'until', /with a zone/);
  await refused({ since: '2026-01-05T08:00:00Z', until: new Date('2026-01-05T07:00:00Z') }, 'since', /before until/);
  await refused({ metadata: ['user'] }, 'metadata', /JSON object/);
  await refused({ eventType: 'Paid' }, 'eventType', /no option eventType/);
});

test('readAll refuses a position that is not an event, and bad options', async () => {
  await assert.rejects(store.readAll({ after: 10 ** 12 }), (e) => e instanceof errors.UnknownPositionError && /no event at position/.test(e.message));
  await assert.rejects(store.readAll({ after: -1 }), errors.InputError);
  await assert.rejects(store.readAll({ limit: 0 }), errors.InputError);
  await assert.rejects(store.readAll({ afterPosition: 3 }), (e) => e instanceof errors.InputError && /no option afterPosition/.test(e.message));
});

async function quests() {
  await store.appendAll([
    { id: own('find-1'), type: 'Quest', data: [{ $type: 'QuestStarted', location: own('Falme'), members: ['Rand', 'Mat'] },
      { $type: 'TownReached', location: own('Tanchico'), traveled: 120 }] },
    { id: own('find-2'), type: 'Quest', data: [{ $type: 'QuestStarted', location: own('Falme'), members: ['Egwene'] },
      { $type: 'EndOfDay', traveled: 40 }] },
    { id: own('find-3'), type: 'Quest', data: [{ $type: 'QuestStarted', location: own('Tanchico'), members: ['Mat'] },
      { $type: 'EndOfDay', traveled: 250 }, { $type: 'QuestEnded', location: own('Tanchico') }] },
  ]);
}

test('views(name).find filters documents by field, orders and pages them; count counts', async () => {
  await quests();
  const parties = store.views('Party');
  const ids = (docs) => docs.map((doc) => doc.id);
  assert.deepEqual(ids(await parties.find({ location: own('Tanchico') })), [own('find-1'), own('find-3')]);
  assert.deepEqual(ids(await parties.find({ location: own('Tanchico'), active: true })), [own('find-1')]);
  assert.deepEqual(ids(await parties.find({ members: ['Mat'], location: { $in: [own('Falme'), own('Tanchico')] } }, { orderBy: '-traveled' })),
    [own('find-3'), own('find-1')]);
  const far = await parties.find({ traveled: { $gte: 100, $lt: 1000 }, location: { $in: [own('Falme'), own('Tanchico')] } }, { orderBy: 'traveled' });
  assert.deepEqual(far.map((doc) => [doc.id, doc.data.traveled]), [[own('find-1'), 120], [own('find-3'), 250]]);
  assert.deepEqual((await parties.find({ location: own('Falme') }))[0], { id: own('find-2'), data: { active: true, traveled: 40, location: own('Falme'), members: ['Egwene'] } });
  const mine = { location: { $in: [own('Falme'), own('Tanchico')] } };
  const first = await parties.find(mine, { orderBy: 'traveled', limit: 2 });
  const second = await parties.find(mine, { orderBy: 'traveled', limit: 2, after: first[1].id });
  assert.deepEqual(ids(first.concat(second)), [own('find-2'), own('find-1'), own('find-3')]);
  assert.equal(await parties.count(mine), 3);
  assert.equal(await parties.count({ location: own('Tanchico'), active: { $ne: true } }), 1);
  assert.equal((await parties.get(own('find-3'))).active, false);
});

test('a where is checked before any SQL runs: fields are names, values JSON, operators known', async () => {
  const parties = store.views('Party');
  await assert.rejects(parties.find({ "x'); drop table pge_events; --": 1 }),
    (e) => e instanceof errors.InvalidFieldError && e instanceof errors.InputError && e.field === "x'); drop table pge_events; --");
  await assert.rejects(parties.find({ traveled: { $regex: '.' } }), (e) => e instanceof errors.QueryError && /unknown operator '\$regex'/.test(e.message));
  await assert.rejects(parties.find({ traveled: NaN }), (e) => e instanceof errors.QueryError && e.field === 'traveled');
  await assert.rejects(parties.find({ traveled: { $gt: true } }), errors.QueryError);
  await assert.rejects(parties.find(null, { orderBy: '1st' }), (e) => e instanceof errors.InvalidFieldError && /^orderBy: /.test(e.message));
  await assert.rejects(parties.find(null, { sort: 'id' }), errors.QueryError);
  assert.equal((await store.query('select count(*)::int as n from pge_events'))[0].n > 0, true, 'pge_events is still there');
  assert.deepEqual(await parties.find({ location: "O'Brien's \" \\ Field" }), [], 'values are parameters');
});

test('views: unknown, live and aggregate projections; missing documents', async () => {
  await assert.rejects(store.views('Nope').find(), (e) => e instanceof errors.UnknownProjectionError && e.projection === 'Nope');
  await assert.rejects(store.views('Journal').find(), (e) => e instanceof errors.ProjectionError && /live projection/.test(e.message));
  await assert.rejects(store.views('Traveled').find(), (e) => e instanceof errors.QueryError && /aggregate/.test(e.message));
  await store.append(own('agg-1'), 'Quest', { $type: 'EndOfDay', traveled: 1 });
  assert.equal(typeof (await store.views('Traveled').get('Traveled')).days, 'number');
  await assert.rejects(store.views('Party').get('nobody'), (e) => e instanceof errors.UnknownDocumentError && e.id === 'nobody');
  await assert.rejects(store.views('Party').find(null, { orderBy: 'traveled', after: 'nobody' }), errors.UnknownDocumentError);
});

test('archiveStream and unarchiveStream say what they changed; deleteStream tombstones until re-created', async () => {
  const id = own('lifecycle');
  await store.append(id, 'Ledger', { $type: 'Opened', owner: 'Di' });
  const archived = await store.archiveStream(id);
  assert.equal(archived.streamId, id);
  assert.equal(archived.changed, true);
  assert.ok(archived.archivedAt instanceof Date && !Number.isNaN(archived.archivedAt.getTime()));
  assert.equal((await store.archiveStream(id)).changed, false, 'archived already');
  await assert.rejects(store.append(id, null, { $type: 'Paid', amount: 1 }), errors.StreamArchivedError);
  assert.deepEqual(await store.unarchiveStream(id), { streamId: id, changed: true, archivedAt: null });
  assert.equal((await store.unarchiveStream(id)).changed, false);
  await assert.rejects(store.archiveStream(own('nobody')), errors.UnknownStreamError);
  // (the second blind review: null, undefined, arrays and objects became the streams "null", "a,b"...)
  for (const bad of [null, undefined, '', ['a', 'b'], { toString() { return id; } }, 7]) {
    for (const call of ['archiveStream', 'unarchiveStream', 'deleteStream']) {
      await assert.rejects(store[call](bad), (e) => e instanceof errors.InputError && /non-empty string/.test(e.message), call);
    }
  }
  assert.equal((await store.fetchStream(id)).version, 1, 'nothing was archived or deleted');
  const tombstone = await store.deleteStream(id, { metadata: { by: 'node' } });
  assert.equal(tombstone.version, 2);
  await assert.rejects(store.append(id, null, { $type: 'Paid', amount: 1 }), errors.StreamDeletedError);
  await assert.rejects(store.deleteStream(id, { reason: 'x' }), (e) => e instanceof errors.InputError && /reason/.test(e.message));
  const again = await store.append(id, null, { $type: 'Opened', owner: 'Di' }, { expectedVersion: tombstone.version });
  assert.equal(again.version, 3, 're-created explicitly, going on from the tombstone');
  assert.deepEqual((await store.fetchStream(id)).events.map((e) => e.$type), ['Opened', '$deleted', 'Opened']);
});
