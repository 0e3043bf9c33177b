'use strict';
// Upcasters and renames (lib/upcast.js): what they declare, what projections
// then see, and how they fail, through the Node host's engine. Every host runs
// the same engine: the conformance case `upcasting` runs one in each.

const test = require('node:test');
const assert = require('node:assert/strict');

const jsprojModule = require('..');
const engine = jsprojModule.engine;

function load(files) {
  const projector = jsprojModule.createProjector();
  jsprojModule.loadSources(projector, Object.entries(files).map(([file, source]) => ({ file, source })));
  return projector;
}

function record(position, streamId, event) {
  return { position, streamId, streamType: 'Quest', version: position, timestamp: '2026-01-0' + position + 'T00:00:00.000Z',
    metadata: null, event: Object.assign({ $id: 'e' + position }, event) };
}

function plain(value) {
  return JSON.parse(JSON.stringify(value));
}

// What a projection saw of each event: the whole event, and its meta's type.
const SEEN = {
  'Seen.js': `projections.projectStream('Quest').named('Seen').by({
    $init: function () { return { events: [] }; },
    Started: function (state, evt, meta) { state.events.push({ evt: evt, keys: Object.keys(evt), as: meta.eventType }); }
  });`
};

const HISTORY = Object.assign({
  'upcasters.js': `projections.renameEvent('Begun').to('Started');
    projections.upcast('Started').from(1).by(function (evt) { evt.hero = { name: evt.hero }; });
    projections.upcast('Started').from(2).by(function (evt) { return { party: [evt.hero.name], zeta: 1, b: 2 }; });`
}, SEEN);

test('events go through the renames and then the upcasters, version by version, up to the newest shape', () => {
  const projector = load(HISTORY);
  engine.applyInMemory(projector, [
    record(1, 'q', { $type: 'Begun', hero: 'Rand' }),
    record(2, 'q', { $type: 'Started', $version: 2, hero: { name: 'Mat' } }),
    record(3, 'q', { $type: 'Started', $version: 3, party: ['Perrin'] }),
    record(4, 'q', { $type: 'Started', $version: 7, later: true })    // newer than every upcaster: as it is
  ]);
  const seen = plain(projector.store.find('Seen', 'q')).events;
  assert.deepEqual(seen.map((s) => s.evt), [
    { $type: 'Started', $id: 'e1', b: 2, zeta: 1, party: ['Rand'], $version: 3 },
    { $type: 'Started', $id: 'e2', b: 2, zeta: 1, party: ['Mat'], $version: 3 },
    { $type: 'Started', $id: 'e3', $version: 3, party: ['Perrin'] },
    { $type: 'Started', $id: 'e4', $version: 7, later: true }
  ]);
  // $type and $id first, the rest in jsonb's order ($version among them): as a stored event of that shape reads
  assert.deepEqual(seen[0].keys, ['$type', '$id', 'b', 'zeta', 'party', '$version']);
  assert.deepEqual(seen.map((s) => s.as), ['Started', 'Started', 'Started', 'Started']);
});

test('the records a host gives are never changed: the stored log is what it is', () => {
  const projector = load(HISTORY);
  const records = [record(1, 'q', { $type: 'Begun', hero: 'Rand' })];
  const before = plain(records);
  engine.applyInMemory(projector, records);
  assert.deepEqual(plain(records), before);
  assert.deepEqual(plain(engine.upcastRecords(projector, records)),
    [{ event: { $type: 'Started', $id: 'e1', b: 2, zeta: 1, party: ['Rand'], $version: 3 } }]);
  assert.deepEqual(plain(records), before);
});

test('a field named __proto__ stays a field through a rename and an upcaster, as JSON.parse makes it', () => {
  const projector = load({
    'up.js': `projections.renameEvent('Old').to('Renamed');
      projections.upcast('Up').from(1).by(function (evt) { evt.more = 1; });`,
    'Seen.js': `projections.projectStream('Quest').named('Seen').by({ $any: function (state, evt) {
      state[evt.$type] = { keys: Object.keys(evt), plain: Object.getPrototypeOf(evt) === Object.prototype, x: evt.__proto__.x };
    } });`
  });
  const parsed = (n, type) => Object.assign(record(n, 'q', {}),
    { event: JSON.parse('{"$type": "' + type + '", "__proto__": {"x": 1}, "$id": "e' + n + '"}') });
  for (const owned of [false, true]) {          // a host's records, and those the text API made for the call
    const records = [parsed(1, 'Old'), parsed(2, 'Up')];
    engine.applyInMemory(projector, owned ? engine.ownRecords(records) : records);
    const seen = plain(projector.store.find('Seen', 'q'));
    assert.deepEqual(seen.Renamed, { keys: ['$type', '__proto__', '$id'], plain: true, x: 1 });
    assert.deepEqual(seen.Up, { keys: ['$type', '$id', 'more', '$version', '__proto__'], plain: true, x: 1 });
  }
});

test('the description lists every upcaster and rename, and what reaches each projection', () => {
  const projector = load(Object.assign({
    'Other.js': `projections.aggregate('Count').by({ Ended: function (s) { s.n = (s.n || 0) + 1; } });
      projections.aggregate('Starts').by({ Started: function (s) { s.n = (s.n || 0) + 1; } });`
  }, HISTORY));
  assert.deepEqual(plain(engine.describeUpcasters(projector)), {
    upcasters: [{ eventType: 'Started', from: 1, to: 2, file: 'upcasters.js' }, { eventType: 'Started', from: 2, to: 3, file: 'upcasters.js' }],
    renames: [{ from: 'Begun', to: 'Started', file: 'upcasters.js' }]
  });
  const described = Object.fromEntries(engine.describe(projector).map((d) => [d.name, d]));
  assert.deepEqual(described.Count.upcasters, []);                       // nothing reaches it: never rebuilt for them
  assert.deepEqual(described.Starts.renamedFrom, ['Begun']);             // routed by the stored name too (pge_route)
  assert.equal(described.Starts.upcasters.length, 3);
  assert.equal(described.Seen.upcasters.length, 3, 'a stream projection sees every event of its streams');
});

// -- what is declared ------------------------------------------------------------------------

function loadError(files) {
  try {
    load(files);
  } catch (e) {
    return { kind: e.kind, message: e.message, file: e.file };
  }
  return null;
}

test('upcasters that clash are refused when the files load, naming the file', () => {
  const up = (type, from) => `projections.upcast('${type}').from(${from}).by(function (e) { return e; });`;
  assert.deepEqual(loadError({ 'a.js': up('A', 1), 'b.js': up('A', 1) }), { kind: 'ProjectionDefinitionError',
    message: 'b.js: the upcaster of A from version 1 is defined twice (first in a.js)', file: 'b.js' });
  assert.match(loadError({ 'a.js': up('A', 1) + up('A', 3) }).message, /^a\.js: the upcasters of A go from version 1 and from version 3, and none from version 2/);
  const renames = (pairs) => pairs.map(([from, to]) => `projections.renameEvent('${from}').to('${to}');`).join('\n');
  assert.match(loadError({ 'a.js': renames([['A', 'B'], ['B', 'C'], ['C', 'A']]) }).message, /renameEvent: A -> B -> C -> A is a cycle/);
  assert.match(loadError({ 'a.js': renames([['A', 'B']]), 'b.js': renames([['A', 'C']]) }).message, /^b\.js: renameEvent\("A"\) is defined twice \(first in a\.js\)/);
  assert.match(loadError({ 'a.js': renames([['A', 'A']]) }).message, /names the same type/);
  // an upcaster of a name renamed away, even in another file: it would never run
  assert.deepEqual(loadError({ 'a.js': renames([['A', 'B']]), 'z.js': up('A', 1) }), { kind: 'ProjectionDefinitionError',
    message: 'z.js: upcast("A"): A is renamed to B (a.js), so projections never see it: upcast B instead (a renamed event keeps its $version)', file: 'z.js' });
  // a handler of a name renamed away: it would never run either
  assert.match(loadError({ 'a.js': renames([['A', 'B']]), 'P.js': `projections.aggregate('P').by({ A: function () {} });` }).message,
    /^P\.js: P: handles A, which renameEvent renames to B \(a\.js\): projections see those events as B; handle B instead$/);
  assert.match(loadError({ 'a.js': `projections.upcast('A').from(0).by(function () {});` }).message, /from\(\) takes the version it upcasts from, a whole number from 1 to 999999, not 0/);
  assert.match(loadError({ 'a.js': `projections.upcast('A').from(1).by('x');` }).message, /needs a function of the event, not a string/);
  assert.match(loadError({ 'a.js': `projections.upcast('').from(1).by(function () {});` }).message, /the event type must not be empty/);
});

test('upcasters are declared while the file loads, never from a handler', () => {
  const projector = load({
    'a.js': `var dsl = projections;
      projections.aggregate('Late').by({ Started: function (s) { try { dsl.upcast('X').from(1).by(function () {}); } catch (e) { s.refused = e.message; } } });`
  });
  engine.applyInMemory(projector, [record(1, 'q', { $type: 'Started' })]);
  assert.match(projector.store.findAggregate('Late').refused, /upcast\(\) can be used only while the file loads/);
});

// -- how an upcaster fails --------------------------------------------------------------------

const FAILING = {
  'up.js': `projections.upcast('Started').from(1).by(function (evt) {
      if (evt.boom) throw new TypeError('no hero');
      if (evt.give) return evt.give === 'null' ? null : evt.give === 'type' ? { $type: 'Other' } : evt.give === 'id' ? { $id: 'x' } : [1];
      if (evt.cyclic) { var o = {}; o.self = o; return { o: o }; }
      return { hero: evt.hero };
    });`,
  'P.js': `projections.projectStream('Quest').named('Party').by({ Started: function (s, e) { s.heroes = (s.heroes || []).concat([e.hero]); } });
    projections.aggregate('Heroes').by({ Started: function (s, e) { s.n = (s.n || 0) + 1; } });
    projections.aggregate('Other').by({ Ended: function (s) { s.n = (s.n || 0) + 1; } });`
};

test('an upcaster that throws fails the event for every projection it was going to, naming the upcaster and the event', () => {
  const projector = load(FAILING);
  const result = engine.apply(projector, [record(1, 'q', { $type: 'Started', hero: 'Rand' }), record(2, 'q', { $type: 'Started', boom: true })],
    { Party: { q: null }, Heroes: { Heroes: null } });
  const errors = result.errors.map(engine.errorInfo);
  assert.deepEqual(errors.map((e) => [e.kind, e.projection, e.upcaster, e.position, e.eventId]),
    [['UpcastError', 'Party', 'Started from version 1', 2, 'e2'], ['UpcastError', 'Heroes', 'Started from version 1', 2, 'e2']]);
  assert.equal(errors[0].message, 'upcaster Started from version 1 (up.js) failed on Started event e2 for projection Party ' +
    '(stream q, version 2, position 2): TypeError: no hero');
  assert.deepEqual(errors[0].error, { name: 'TypeError', message: 'no hero' });
  assert.match(errors[0].stack, /up\.js:2/);
  assert.deepEqual(Object.keys(result.changes), [], 'the projections it reached change nothing in the batch, as for a handler');
});

test('a policy skips the event an upcaster failed on, for each projection alone, and the others go on', () => {
  const projector = load(FAILING);
  const result = engine.applyInMemory(projector, [record(1, 'q', { $type: 'Started', hero: 'Rand' }),
    record(2, 'q', { $type: 'Started', boom: true }), record(3, 'q', { $type: 'Started', hero: 'Mat' })],
  { onError: { Party: 'skip', Heroes: 'skip' } });
  assert.equal(result.errors.length, 2);
  assert.deepEqual(plain(projector.store.find('Party', 'q')), { heroes: ['Rand', 'Mat'] });
  assert.deepEqual(plain(projector.store.findAggregate('Heroes')), { n: 2 });
});

test('what an upcaster returns is checked: an event of its type and id, by the value rule', () => {
  const projector = load(FAILING);
  const failed = (give) => engine.errorInfo(engine.apply(projector, [record(1, 'q', { $type: 'Started', give: give })],
    { Party: { q: null }, Heroes: { Heroes: null } }, { projections: ['Party'] }).errors[0]).message.replace(/^.*\): /, '');
  assert.equal(failed('null'), 'it returned null, not the event: return the event of the next version (or change the one given and return nothing)');
  assert.equal(failed('array'), 'it returned an array, not the event: return the event of the next version (or change the one given and return nothing)');
  assert.equal(failed('type'), 'it changed $type to "Other": an upcaster keeps its type (rename types with projections.renameEvent)');
  assert.equal(failed('id'), 'it changed $id to "x"');
  const cyclic = engine.errorInfo(engine.apply(projector, [record(1, 'q', { $type: 'Started', cyclic: true })], { Party: { q: null } },
    { projections: ['Party'] }).errors[0]);
  assert.match(cyclic.message, /the event it returned cannot be stored: it is nested deeper than 512 levels \(or holds itself\) at \.o\.self/);
});

test('an event whose $version is not a schema version fails as the upcasters of its type would', () => {
  const projector = load(FAILING);
  const error = engine.errorInfo(engine.apply(projector, [record(1, 'q', { $type: 'Started', $version: '2' })], { Party: { q: null } },
    { projections: ['Party'] }).errors[0]);
  assert.equal(error.kind, 'UpcastError');
  assert.equal(error.upcaster, null);
  assert.match(error.message, /^Started event e1 for projection Party \(stream q, version 1, position 1\) cannot be upcast: its \$version is "2"/);
});

test('an upcaster runs only for the events a projection of the call sees', () => {
  const projector = load(FAILING);
  // no projection of the call subscribes to Started: its upcaster does not run, and nothing fails
  const result = engine.applyInMemory(projector, [record(1, 'q', { $type: 'Started', boom: true }), record(2, 'q', { $type: 'Ended' })],
    { projections: ['Other'] });
  assert.deepEqual(result.errors, []);
  assert.deepEqual(plain(projector.store.findAggregate('Other')), { n: 1 });
});

// -- isolated and deterministic like a handler --------------------------------------------------

test('an upcaster keeps nothing that can change what projections saw: it gets a copy, what it returns is copied', () => {
  const projector = load({
    'up.js': `var kept = [];
      projections.upcast('Started').from(1).by(function (evt) {
        kept.forEach(function (k) { k.given.party.push('intruder'); k.returned.party.push('intruder'); });
        var out = { party: evt.party };
        kept.push({ given: evt, returned: out });
        return out;
      });`,
    'Seen.js': `projections.projectStream('Quest').named('Seen').by({
      $init: function () { return { parties: [] }; },
      Started: function (state, evt) { state.parties.push(evt.party); },
      Boom: function () { throw new Error('boom'); }
    });`
  });
  const records = [1, 2].map((n) => record(n, 'q', { $type: 'Started', party: ['p' + n] })).concat([record(3, 'q', { $type: 'Boom' })]);
  // skipping Boom folds the document again from the batch's events: the first as it was upcast, not as its upcaster
  // changed what it returned later
  const result = engine.applyInMemory(projector, records, { onError: { Seen: 'skip' } });
  assert.deepEqual(result.errors.map((e) => e.position), [3]);
  assert.deepEqual(plain(projector.store.find('Seen', 'q')).parties, [['p1'], ['p2']]);
  assert.deepEqual(records.map((r) => r.event.party), [['p1'], ['p2'], undefined]);
});

test("an upcaster's clock and Math.random are its event's: the same on every run, and never a handler's", () => {
  const files = Object.assign({
    'up.js': `projections.upcast('Started').from(1).by(function (evt) { return { at: new Date().toISOString(), r: Math.random() }; });`,
    'R.js': `projections.projectEvent('Started').named('R').by(function (evt) { return { at: evt.at, r: evt.r, mine: Math.random() }; });`
  });
  const run = () => {
    const projector = load(files);
    engine.applyInMemory(projector, [record(1, 'q', { $type: 'Started' }), record(2, 'q', { $type: 'Started' })]);
    return plain(projector.store.byId('R').all());
  };
  const first = run();
  assert.deepEqual(run(), first);
  assert.equal(first.e1.at, '2026-01-01T00:00:00.000Z');
  assert.notEqual(first.e1.r, first.e2.r);
  assert.notEqual(first.e1.r, first.e1.mine);
});

test("the spike's calls of one projection upcast what they are given", () => {
  const projector = load(HISTORY);
  const seen = projector.projections.Seen;
  const state = seen.createSnapshot([{ $type: 'Begun', hero: 'Rand' }]);
  assert.deepEqual(plain(state).events[0].evt, { $type: 'Started', b: 2, zeta: 1, party: ['Rand'], $version: 3 });
  assert.deepEqual(plain(seen.applyEvent(null, { $type: 'Started', $version: 2, hero: { name: 'Mat' } })).events[0].evt.party, ['Mat']);
});

test('upcasters defined in code (the Node API) replace one another and are checked when events come', () => {
  const projector = jsprojModule.createProjector();
  projector.projectStream('Quest').named('P').by({ Started: function (s, e) { s.v = e.v; } });
  projector.upcast('Started').from(1).by(function (e) { return { v: 'first' }; });
  projector.upcast('Started').from(1).by(function (e) { return { v: 'second' }; });
  projector.processEvent('q', 'Quest', { $type: 'Started' });
  assert.deepEqual(plain(projector.store.find('P', 'q')), { v: 'second' });
  projector.renameEvent('Old').to('Started');
  projector.upcast('Old').from(1).by(function (e) { return e; });
  assert.throws(() => projector.processEvent('q', 'Quest', { $type: 'Started' }), /upcast\("Old"\): Old is renamed to Started/);
});
