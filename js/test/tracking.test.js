'use strict';
// Large documents are tracked instead of copied when a batch touches them
// again (lib/tracking.js). Whatever a handler does, the views must be those
// of the copy: each scenario runs with one event per batch (always copied)
// and all events in one batch (tracked after the first), and must agree.

const test = require('node:test');
const assert = require('node:assert/strict');

const jsprojModule = require('..');
const engine = jsprojModule.engine;

const LARGE = 'function large() { return { pad: new Array(600).fill(0) }; }\n';

function run(handlers, eventData, pageSize) {
  const projector = jsprojModule.createProjector();
  const source = LARGE + "projections.aggregate('Doc').by({ $init: large, " + handlers + ' });';
  jsprojModule.loadSources(projector, [{ file: 'Doc.js', source }]);
  const records = engine.normalize(engine.parseEvents(JSON.stringify([{ id: 's', type: 'S', data: eventData }])),
    { now: '2026-01-01T00:00:00.000Z' });
  let tracked = 0;
  const original = engine.foldTracked;
  engine.foldTracked = function () { tracked += 1; return original.apply(this, arguments); };
  try {
    return { out: JSON.parse(JSON.stringify(engine.simulate(projector, records, { pageSize }))), tracked };
  } catch (e) {
    return { error: e.kind + ': ' + e.message, tracked };
  } finally {
    engine.foldTracked = original;
  }
}

function sameAsCopied(handlers, eventData) {
  const copied = run(handlers, eventData, 1);
  const tracked = run(handlers, eventData, 1000);
  assert.equal(copied.tracked, 0);
  assert.ok(tracked.tracked > 0, 'the scenario must exercise tracking');
  assert.deepEqual(tracked.out, copied.out);
  assert.equal(tracked.error, copied.error);
  return copied;
}

const events = (n, extra) => Array.from({ length: n }, (_, i) => Object.assign({ $type: 'E', i }, extra || {}));

test('nested writes, counters and values JSON cannot hold', () => {
  const { out } = sameAsCopied(`E: function (s, e) {
    s.counts = s.counts || {};
    s.counts['k' + (e.i % 3)] = (s.counts['k' + (e.i % 3)] || 0) + 1;
    s.seen = [typeof s.when, Object.is(s.neg, -0), s.nan, 'gone' in s];
    s.when = new Date(Date.UTC(2026, 0, 1 + e.i)); s.neg = -0; s.nan = NaN; s.gone = undefined; s.fn = function () {};
  }`, events(5));
  assert.deepEqual(out.aggregates.Doc.counts, { k0: 2, k1: 2, k2: 1 });
  assert.deepEqual(out.aggregates.Doc.seen, ['string', false, null, false]);
});

test('objects moved or shared within a call are separate documents parts afterwards', () => {
  sameAsCopied(`E: function (s, e) {
    if (e.i === 0) { s.a = { x: 0, list: [1] }; return; }
    if (e.i === 1) { s.b = s.a; s.b.x = 1; s.same = s.a === s.b; return; }
    s.a.x += 10; s.b.list.push(e.i); s.apart = s.a.x !== s.b.x;
    var mine = { inner: s.a }; s.c = mine; mine.later = true;
  }`, events(4));
});

test('arrays: push, holes, a shorter length, deleted items, sorting', () => {
  sameAsCopied(`E: function (s, e) {
    s.list = s.list || [];
    s.list.push(e.i);
    if (e.i === 2) s.list[8] = 'far';
    if (e.i === 3) delete s.list[1];
    if (e.i === 4) s.list.length = 6;
    if (e.i === 5) s.list.sort(function (a, b) { return String(b).localeCompare(String(a)); });
    s.snapshot = s.list.map(function (v, i) { return (i in s.list) ? v : 'hole'; });
  }`, events(7));
});

test('keys are listed as on a copy: jsonb order as the call began, then those added, indexes first', () => {
  const { out } = sameAsCopied(`E: function (s, e) {
    s.m = s.m || {};
    var key = ['bb', 'a', '10', 'é', '9', 'ab', 'a', 'c'][e.i];
    if (e.i === 6) delete s.m.a;
    s.m[key] = e.i;
    s.listed = (s.listed || []).concat([Object.keys(s.m).join(',')]);
    s.forIn = []; for (var k in s.m) s.forIn.push(k);
    s.text = JSON.stringify(s.m);
    s.entries = Object.entries(s.m).length;
  }`, events(8));
  assert.deepEqual(out.aggregates.Doc.listed.slice(4),
    ['9,10,a,bb,é', '9,10,a,bb,é,ab', '9,10,ab,bb,é,a', '9,10,a,ab,bb,é,c'], 'deleted and added again: last');
});

test('what a tracked view cannot follow falls back to a copy with the same result', () => {
  sameAsCopied(`E: function (s, e) {
    var kind = e.i % 6;
    if (kind === 0) Object.defineProperty(s, 'computed', { get: function () { return 42; }, enumerable: true, configurable: true });
    if (kind === 1) Object.defineProperty(s, 'hidden', { value: 1, enumerable: false, configurable: true });
    if (kind === 2) { s.sub = { a: 1 }; Object.freeze(s.sub); }
    if (kind === 3) s[Symbol('secret')] = 1;
    if (kind === 4) { s.arr = [1, 2]; s.arr.extra = 'named'; }
    if (kind === 5) Object.setPrototypeOf(s.sub || (s.sub = {}), { inherited: true });
    s.kinds = (s.kinds || []).concat([kind, Object.getOwnPropertySymbols(s).length, Object.keys(s).length]);
  }`, events(12));
});

test('a new state returned, the same one returned, and DELETE', () => {
  sameAsCopied(`E: function (s, e) {
    if (e.i === 1) return { pad: s.pad, kept: s.list || [], from: 'new' };
    if (e.i === 2) { s.list = [e.i]; return s; }
    if (e.i === 3) return projections.DELETE;
    s.n = (s.n || 0) + 1;
  }`, events(6));
});

test('a broken rule gives the error a copy gives, path included', () => {
  for (const body of [
    'if (e.i === 2) s.big = BigInt(1);',
    'if (e.i === 2) { var n = s; for (var d = 0; d < 520; d++) { n.c = {}; n = n.c; } }',
    "if (e.i === 2) s.text = 'nul \\u0000';",
    "if (e.i === 2) s['bad\\u0000key'] = 1;",
    'if (e.i === 2) s.self = s;',
    "if (e.i === 2) s.blob = 'x'.repeat(17 * 1024 * 1024);"
  ]) {
    const { error } = sameAsCopied('E: function (s, e) { s.n = e.i; ' + body + ' }', events(4));
    assert.match(error, /^DocumentError: projection Doc made document "Doc" on E event .* \(position 3\) that cannot be stored/);
  }
});

test('a view kept past its call throws when used: nothing can change the document afterwards', () => {
  const handlers = `E: function (s, e) {
    if (e.i === 1) { kept.push(s); return; }
    if (e.i === 2) kept[0].n = 'changed later';
  }`;
  const projector = jsprojModule.createProjector();
  jsprojModule.loadSources(projector, [{ file: 'Doc.js', source: LARGE + 'var kept = [];\n' +
    "projections.aggregate('Doc').by({ $init: large, " + handlers + ' });' }]);
  const records = engine.normalize(engine.parseEvents(JSON.stringify([{ id: 's', type: 'S', data: events(3) }])), {});
  assert.throws(() => engine.simulate(projector, records, { pageSize: 1000 }),
    (e) => e.kind === 'ProjectionHandlerError' && e.projection === 'Doc' && e.position === 3 && /revoked/.test(e.message));
});
