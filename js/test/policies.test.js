'use strict';
// What a host may ask of an apply call (js/lib/policies.js): skip or stop on a
// failing event, events excluded, and partitions of a projection's documents.

const test = require('node:test');
const assert = require('node:assert/strict');

const jsprojModule = require('..');
const engine = jsprojModule.engine;

function record(position, streamId, event) {
  return { position, streamId, streamType: 'Account', version: position, timestamp: '2026-01-01T00:00:00.000Z', metadata: null, event };
}

function load(files) {
  const projector = jsprojModule.createProjector();
  jsprojModule.loadSources(projector, Object.entries(files).map(([file, source]) => ({ file, source })));
  return projector;
}

// Handlers that change their state in place before they throw: a skipped
// event must leave no trace of that.
const ACCOUNTS = {
  'Balance.js': `projections.projectStream('Account').named('Balance').by({
    $init: function () { return { balance: 0, seen: [] }; },
    Deposited: function (s, e) { s.seen.push(e.n); s.balance += e.amount; if (e.poison) throw new Error('poison ' + e.n); }
  });`,
  'Bank.js': `projections.aggregate('Bank').by({
    Deposited: function (s, e) { s.total = (s.total || 0) + e.amount; s.last = e.n; if (e.poison) throw new Error('poison'); }
  });`,
  'ByAmount.js': `projections.projectView('ByAmount').identifiedBy(function (e) { return ['all', 'amount-' + e.amount]; }).by({
    Deposited: function (s, e, meta) { s.ids = (s.ids || []).concat([meta.streamId]); if (e.poison && s.ids.length > 0) throw new Error('poison'); }
  });`
};

function events(count, poisoned) {
  const list = [];
  for (let n = 1; n <= count; n++) {
    const event = { $type: 'Deposited', $id: 'e' + n, n, amount: n % 3 };
    if (poisoned.has(n)) event.poison = true;
    list.push(record(n, 'a' + (n % 4), event));
  }
  return list;
}

function plain(value) {
  return JSON.parse(JSON.stringify(value));
}

function run(projector, records, options) {
  const keys = engine.route(projector, records, options);
  const documents = {};
  for (const [name, ids] of Object.entries(keys)) documents[name] = Object.fromEntries(ids.map((id) => [id, null]));
  return engine.apply(projector, records, documents, options);
}

test('skip: the documents are as if the failing events had never been delivered, and each is reported', () => {
  const poisoned = new Set([3, 7, 8, 20]);
  const all = events(24, poisoned);
  const skip = { onError: { Balance: 'skip', Bank: 'skip', ByAmount: 'skip' } };
  const skipped = run(load(ACCOUNTS), all, skip);
  const clean = run(load(ACCOUNTS), all.filter((r) => !poisoned.has(r.position)));
  assert.deepEqual(plain(skipped.changes), plain(clean.changes));
  assert.deepEqual(clean.errors, []);
  const failed = skipped.errors.map((e) => [e.projection, e.position]).sort();
  const expected = [];
  for (const name of ['Balance', 'Bank', 'ByAmount']) for (const p of poisoned) expected.push([name, p]);
  assert.deepEqual(failed, expected.sort());
  assert.ok(skipped.errors.every((e) => e.kind === 'ProjectionHandlerError'));
});

test('skip with large tracked documents changed in place leaves no trace of the failing event', () => {
  const big = {
    'Big.js': `projections.aggregate('Big').by({
      $init: function () { var s = { slots: {} }; for (var i = 0; i < 2000; i++) s.slots['k' + i] = 0; return s; },
      Deposited: function (s, e) { s.slots['k' + (e.n % 2000)] += e.amount; s.count = (s.count || 0) + 1; if (e.poison) throw new Error('no'); }
    });`
  };
  const poisoned = new Set([5, 6, 40]);
  const all = events(60, poisoned);
  const skipped = run(load(big), all, { onError: { Big: 'skip' } });
  const clean = run(load(big), all.filter((r) => !poisoned.has(r.position)));
  assert.deepEqual(plain(skipped.changes), plain(clean.changes));
  assert.equal(skipped.errors.length, 3);
});

test('stop: the events before the failing one count, nothing after it, for that projection only', () => {
  const all = events(10, new Set([6]));
  const stopped = run(load(ACCOUNTS), all, { onError: { Balance: 'stop' } });
  const before = run(load(ACCOUNTS), all.slice(0, 5), { projections: ['Balance'] });
  assert.deepEqual(plain(stopped.changes.Balance), plain(before.changes.Balance));
  assert.equal(stopped.errors.length, 3);   // Balance stopped at 6; Bank and ByAmount have no policy
  assert.deepEqual(stopped.errors.map((e) => e.projection).sort(), ['Balance', 'Bank', 'ByAmount']);
  assert.equal(stopped.changes.Bank, undefined, 'without a policy a failing projection contributes nothing');
  assert.equal(stopped.errors.find((e) => e.projection === 'Balance').position, 6);
});

test('exclude: events a host dead-lettered are not delivered again', () => {
  const all = events(12, new Set([4]));
  const excluded = run(load(ACCOUNTS), all, { exclude: { Balance: [4], Bank: [4], ByAmount: [4] } });
  const clean = run(load(ACCOUNTS), all.filter((r) => r.position !== 4));
  assert.deepEqual(excluded.errors, []);
  assert.deepEqual(plain(excluded.changes), plain(clean.changes));
});

test('partitions split the documents of a projection: together they are the whole, apart they never overlap', () => {
  const projector = load(ACCOUNTS);
  const all = events(40, new Set());
  const whole = run(projector, all, { projections: ['Balance', 'ByAmount'] });
  const merged = { Balance: {}, ByAmount: {} };
  for (let part = 0; part < 3; part++) {
    const options = { projections: ['Balance', 'ByAmount'], partitions: { Balance: { count: 3, take: [part] }, ByAmount: { count: 3, take: [part] } } };
    const keys = engine.route(projector, all, options);
    for (const [name, ids] of Object.entries(keys)) {
      for (const id of ids) assert.equal(engine.partitionOf(id, 3), part, `${name} ${id} routed to partition ${part}`);
    }
    const result = run(projector, all, options);
    for (const name of ['Balance', 'ByAmount']) {
      for (const [id, doc] of Object.entries(plain(result.changes[name] ? result.changes[name].upserts : {}))) {
        assert.equal(merged[name][id], undefined, `${id} in two partitions`);
        merged[name][id] = doc;
      }
    }
  }
  assert.deepEqual(merged.Balance, plain(whole.changes.Balance.upserts));
  assert.deepEqual(merged.ByAmount, plain(whole.changes.ByAmount.upserts));
});

test('the partition of a key is stable: known values', () => {
  assert.equal(engine.partitionOf('', 20), 0x811c9dc5 % 20);
  // FNV-1a 32-bit over UTF-16 code units, modulo 20, computed apart from the engine
  assert.deepEqual(['a', 'account-1', 'quest-42', 'é'].map((k) => engine.partitionOf(k, 20)), [0, 14, 6, 0]);
});

test('bad options are the host\'s mistake, named', () => {
  const projector = load(ACCOUNTS);
  const all = events(2, new Set());
  const mistakes = [
    [{ onError: { Balance: 'ignore' } }, /must be "skip" or "stop"/],
    [{ onError: { Nope: 'skip' } }, /Nope/],
    [{ exclude: { Balance: 4 } }, /list of positions/],
    [{ partitions: { Bank: { count: 2, take: [0] } } }, /only stream and view projections/],
    [{ partitions: { Balance: { count: 2, take: [2] } } }, /indexes below n/],
    [{ partitions: { Balance: { count: 0, take: [] } } }, /count: n >= 1/]
  ];
  for (const [options, message] of mistakes) {
    assert.throws(() => engine.apply(projector, all, { Balance: { a1: null, a2: null }, Bank: { Bank: null } }, options), message);
  }
});

// The text interface a daemon uses, with documents kept across calls (cache.js).
function hostCall(op, payload) {
  const answer = JSON.parse(engine.host[op](JSON.stringify(payload)));
  if (answer.error) throw Object.assign(new Error(answer.error.message), answer.error);
  return answer.ok;
}

function page(records) {
  // record lines (records.js) for Deposited events of Account streams
  return records.map((r) => [r.position, JSON.stringify(r.streamId), '"Account"', r.version, '2026-01-01 00:00:00+00', 'null',
    '"Deposited"', 'e' + r.position, JSON.stringify(Object.fromEntries(Object.entries(r.event).filter(([k]) => k[0] !== '$')))].join('\t')).join('\n');
}

function runPages(pages, cached, database, failing) {
  // database: {Balance: {id: doc}} as the host's store; each page is routed, loaded, applied, written
  let batch = 100;
  for (const records of pages) {
    const lines = page(records);
    const options = { projections: ['Balance'], onError: { Balance: 'skip' }, cache: cached ? ['Balance'] : [] };
    batch += 1;
    const keys = hostCall('route', { lines, batch, options });
    const documents = {};
    for (const [name, ids] of Object.entries(keys)) documents[name] = Object.fromEntries(ids.map((id) => [id, database[name][id] || null]));
    const result = hostCall('apply', { batch, documents, options });
    if (failing && failing(records)) {             // the host's transaction failed: nothing written, cache dropped
      hostCall('cacheDrop', { projections: ['Balance'] });
      continue;
    }
    for (const [name, change] of Object.entries(result.changes)) {
      Object.assign(database[name], change.upserts);
      for (const id of change.deletes) delete database[name][id];
    }
  }
  return database;
}

test('documents kept across calls give what reading them back gives, around failures and dropped pages', () => {
  hostCall('load', [{ file: 'Balance.js', source: ACCOUNTS['Balance.js'] }]);
  const all = events(300, new Set([7, 50, 51, 120, 299]));
  const pages = [];
  for (let i = 0; i < all.length; i += 23) pages.push(all.slice(i, i + 23));
  const dropped = (records) => records[0].position === 47;   // one page whose transaction failed, then again
  const withFailures = pages.flatMap((p) => (dropped(p) ? [p, p] : [p]));
  let seen = 0;
  const failOnce = (records) => dropped(records) && seen++ === 0;
  const cold = runPages(withFailures, false, { Balance: {} }, failOnce);
  seen = 0;
  const warm = runPages(withFailures, true, { Balance: {} }, failOnce);
  assert.deepEqual(warm, cold);
  assert.ok(Object.keys(warm.Balance).length === 4);
  hostCall('cacheDrop', { projections: null });
});

test('a routed call names only the documents not kept', () => {
  hostCall('load', [{ file: 'Balance.js', source: ACCOUNTS['Balance.js'] }]);
  hostCall('cacheDrop', { projections: null });
  const options = { projections: ['Balance'], cache: ['Balance'] };
  const first = page(events(4, new Set()));
  assert.deepEqual(hostCall('route', { lines: first, batch: 1, options }), { Balance: ['a1', 'a2', 'a3', 'a0'] });
  hostCall('apply', { batch: 1, documents: { Balance: { a0: null, a1: null, a2: null, a3: null } }, options });
  assert.deepEqual(hostCall('route', { lines: first, batch: 2, options }), {}, 'every one is kept');
  assert.equal(hostCall('cacheDrop', { projections: ['Balance'] }).kept, 0);
  assert.deepEqual(Object.keys(hostCall('route', { lines: first, batch: 3, options })), ['Balance']);
});

test('a handler that throws only when its document is folded again drops the projection\'s call, marked', () => {
  const flaky = {
    'Flaky.js': `var calls = 0;
      projections.projectStream('Account').named('Flaky').by({
        Deposited: function (s, e) { calls += 1; if (e.poison || calls === 5) throw new Error('flaky'); s.n = (s.n || 0) + 1; }
      });`
  };
  const all = [1, 2, 3].map((n) => record(n, 'a', { $type: 'Deposited', $id: 'e' + n, n, poison: n === 3 }));
  const result = run(load(flaky), all, { onError: { Flaky: 'skip' } });
  assert.equal(result.changes.Flaky, undefined, 'nothing of the call is kept');
  const last = result.errors[result.errors.length - 1];
  assert.equal(last.discarded, true, 'and the host is told so: it stops where the call began');
});
