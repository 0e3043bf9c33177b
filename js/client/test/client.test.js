'use strict';
// @jsproj/client against a real store: JSPROJ_TEST_DSN names a database where
// the quest example is deployed inline with an in-database engine (the
// pytest wrapper tests/cli/test_node_client.py makes one and runs these).

const test = require('node:test');
const assert = require('node:assert/strict');
const { connect, errors, toEventMessage } = require('..');

const DSN = process.env.JSPROJ_TEST_DSN;
if (!DSN) throw new Error('set JSPROJ_TEST_DSN to a store with the quest example deployed (tests/cli/test_node_client.py does)');

const store = connect({ dsn: DSN });
test.after(() => store.close());

async function eventCount() {
  const { rows } = await store.pool.query('select count(*)::int as n from pge_events');
  return rows[0].n;
}

test('a message with no stream id gets one; the stream and its view read back', async () => {
  const appended = await store.append({ type: 'Quest', data: [{ $type: 'QuestStarted', location: "Emond's Field", members: ['Rand'] }] });
  assert.equal(appended.version, 1);
  assert.equal(typeof appended.streamId, 'string');
  const stream = await store.fetchStream(appended.streamId);
  assert.equal(stream.type, 'Quest');
  assert.equal(stream.version, 1);
  assert.deepEqual(Object.keys(stream.events[0]).slice(0, 2), ['$type', '$id']);
  assert.deepEqual(await store.fetchView('Party', appended.streamId),
    { active: true, traveled: 0, location: "Emond's Field", members: ['Rand'] });
});

test('append(streamId, type, ...events, {expectedVersion}) appends; a stale version is a ConcurrencyError and writes nothing', async () => {
  const first = await store.append('quest-c', 'Quest', { $type: 'QuestStarted', location: 'Bree', members: [] }, { expectedVersion: 0 });
  assert.equal(first.version, 1);
  const second = await store.append('quest-c', null, { $type: 'TownReached', location: 'Weathertop', traveled: 3 },
    { $type: 'EndOfDay', traveled: 2 }, { expectedVersion: 1 });
  assert.equal(second.version, 3);
  const before = await eventCount();
  await assert.rejects(store.append('quest-c', null, { $type: 'EndOfDay', traveled: 1 }, { expectedVersion: 1 }), (e) => {
    assert.ok(e instanceof errors.ConcurrencyError && e instanceof errors.JsprojError);
    assert.equal(e.code, 'JP409');
    assert.deepEqual([e.streamId, e.expected, e.actual], ['quest-c', 1, 3]);
    return true;
  });
  assert.equal(await eventCount(), before);
  assert.equal((await store.fetchView('Party', 'quest-c')).traveled, 5);
  assert.deepEqual(await store.fetchView('Traveled'), { traveled: 5, days: 1 });
});

test('appendAll appends a batch all or nothing; a refused message is named and uses no position', async () => {
  const results = await store.appendAll([
    { id: 'quest-n1', type: 'Quest', data: { $type: 'QuestStarted', location: 'Bree', members: [] } },
    { id: 'quest-n1', expected_version: 1, data: { $type: 'TownReached', location: 'Weathertop', traveled: 3 } },
  ]);
  assert.deepEqual(results.map((r) => r.version), [1, 2]);
  assert.deepEqual(await store.appendAll([]), []);
  const before = await eventCount();
  const last = results[1].positions[0];
  await assert.rejects(store.appendAll([
    { id: 'quest-n2', type: 'Quest', data: { $type: 'QuestStarted', location: 'Bree', members: [] } },
    { id: 'quest-n2', data: { location: 'no type' } },
  ]), (e) => e instanceof errors.InvalidEventError && e.code === 'JP400' && e.messageNumber === 2 &&
    /^message 2: event 1: Missing \$type/.test(e.message));
  await assert.rejects(store.appendAll({ id: 'x' }), (e) => e instanceof errors.InputError && /takes an array/.test(e.message));
  assert.equal(await eventCount(), before);
  const next = await store.append('quest-n3', 'Quest', { $type: 'QuestStarted', location: 'Bree', members: [] });
  assert.deepEqual(next.positions, [last + 1], 'the refused batch used no position');
});

test('live folds a stream here with the engine, from the deployed projections', async () => {
  await store.append('quest-l', 'Quest', [{ $type: 'QuestStarted', location: 'Caemlyn', members: [] },
    { $type: 'TownReached', location: 'Whitebridge', traveled: 9 }]);
  assert.deepEqual(await store.live('Journal', 'quest-l'),
    { entries: ['1. QuestStarted at Caemlyn', '2. TownReached at Whitebridge'] });
  assert.deepEqual(await store.live('Party', 'quest-l'), await store.fetchView('Party', 'quest-l'), 'the same engine');
  assert.equal(await store.live('Journal', 'nobody'), null);
  await assert.rejects(store.live('Traveled', 'quest-l'), errors.ProjectionError);
  await assert.rejects(store.live('Nope', 'quest-l'), errors.UnknownProjectionError);
});

test('live folds a stream longer than a page as one fold; a stream of another type folds to null', async () => {
  const days = Array.from({ length: 4499 }, (_, n) => ({ $type: 'EndOfDay', traveled: n % 7 }));
  await store.append('quest-long', 'Quest', [{ $type: 'QuestStarted', location: 'Tar Valon', members: ['Moiraine'] }, ...days]);
  const party = await store.live('Party', 'quest-long');
  assert.equal(party.traveled, days.reduce((sum, day) => sum + day.traveled, 0));
  assert.deepEqual(party, await store.fetchView('Party', 'quest-long'), 'pages of 2,000 fold as the inline projection did');
  await store.append('caravan-1', 'Caravan', { $type: 'QuestStarted', location: 'Tear', members: [] });
  assert.equal(await store.live('Party', 'caravan-1'), null);
});

test('unknown streams and documents are null; an unknown view is an error', async () => {
  assert.equal(await store.fetchStream('nobody'), null);
  assert.equal(await store.fetchView('Party', 'nobody'), null);
  await assert.rejects(store.fetchView('Nope', 'x'), (e) => e instanceof errors.UnknownProjectionError && e.code === 'JP404');
});

test('bad input is a clear error and writes nothing', async () => {
  const before = await eventCount();
  await assert.rejects(store.append({ id: 'quest-b', type: 'Quest', data: [{ location: 'no type' }] }),
    (e) => e instanceof errors.InvalidEventError && e.code === 'JP400' && /\$type/.test(e.message));
  await assert.rejects(store.append('quest-b', 'Quest'), (e) => e instanceof errors.InputError && /needs a message/.test(e.message));
  await assert.rejects(store.append('quest-b', 'Quest', { $type: 'EndOfDay' }, { expectedVersion: -1 }),
    (e) => e instanceof errors.InputError && /expectedVersion/.test(e.message));
  await assert.rejects(store.append(42, 'Quest', { $type: 'EndOfDay' }), errors.InputError);
  await assert.rejects(store.append({ id: 'quest-b', type: 'Quest', data: [{ $type: 'QuestStarted' }], typo: 1 }), errors.InvalidEventError);
  assert.equal(await eventCount(), before);
});

test('toEventMessage builds the spike-style messages', () => {
  assert.deepEqual(toEventMessage(['s', 'T', { $type: 'A' }, { $type: 'B' }]), { id: 's', type: 'T', data: [{ $type: 'A' }, { $type: 'B' }] });
  assert.deepEqual(toEventMessage([null, 'T', [{ $type: 'A' }], { expectedVersion: 0 }]), { type: 'T', data: [{ $type: 'A' }], expected_version: 0 });
  assert.deepEqual(toEventMessage([{ id: 's', data: { $type: 'A' } }, { expectedVersion: 2 }]), { id: 's', data: { $type: 'A' }, expected_version: 2 });
});

test('the spike end to end: assigned id, existing stream, view, then clean all and the same event ids again', async () => {
  const started = { $type: 'QuestStarted', $id: '7b1c0c3e-5d1a-4c1e-9a43-2f1f1d7c0a01', location: 'Tar Valon', members: [] };
  const made = await store.append(null, 'Quest', started);
  await store.append(made.streamId, null, { $type: 'TownReached', location: 'Caemlyn', traveled: 8 });
  assert.equal((await store.fetchStream(made.streamId)).version, 2);
  assert.equal((await store.fetchView('Party', made.streamId)).location, 'Caemlyn');
  await assert.rejects(store.append(null, 'Quest', started), errors.InvalidEventError, 'an event id is stored once');
  await store.cleanAllEvents();
  assert.equal(await store.fetchStream(made.streamId), null);
  assert.equal(await store.fetchView('Party', made.streamId), null);
  assert.equal(await eventCount(), 0);
  const again = await store.append(null, 'Quest', started);
  assert.equal(again.version, 1);
});

test('an unreachable store is a StoreUnavailableError', async () => {
  const nowhere = connect({ dsn: 'postgresql://nobody@127.0.0.1:1/none' });
  await assert.rejects(nowhere.fetchStream('x'), errors.StoreUnavailableError);
  await nowhere.close();
});
