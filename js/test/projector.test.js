'use strict';
// The original projector API, as code written against the
// spike's module uses it: require('@jsproj/projections') (here '..'), then the DSL and
// projector methods on the singleton.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const fs = require('fs');
const os = require('os');
const { execFileSync } = require('child_process');

const projector = require('..');

// Temporary folders made by a test, removed after it.
function tempFolder(t, prefix) {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(folder, { recursive: true, force: true }));
  return folder;
}

function defineQuest() {
  projector.projectStream('Quest').named('Party').by({
    $init: function () { return { active: true, traveled: 0, location: null }; },
    QuestStarted: function (state, evt) { state.active = true; state.location = evt.location; },
    TownReached: function (state, evt) { state.location = evt.location; state.traveled += evt.traveled; },
    EndOfDay: function (state, evt) { state.traveled += evt.traveled; },
    QuestEnded: function (state, evt) { state.active = false; state.location = evt.location; }
  });
  projector.projectEvent('TownReached').named('Arrival').by(function (evt) {
    return { town: evt.location };
  });
  projector.aggregate('Traveled').by({
    $init: function () { return { traveled: 0 }; },
    TownReached: function (state, evt) { state.traveled += evt.traveled; },
    EndOfDay: function (state, evt) { state.traveled += evt.traveled; }
  });
}

function captureQuests() {
  projector.processEvent(1, 'Quest', { $type: 'QuestStarted', location: "Emond's Field" });
  projector.processEvent(2, 'Quest', { $type: 'QuestStarted', location: 'Rivendell' });
  projector.processEvent(1, 'Quest', { $type: 'TownReached', location: 'Baerlon', traveled: 4 });
  projector.captureEvent(2, 'Quest', { $type: 'TownReached', location: 'Moria', traveled: 100 });
  projector.processEvent(1, 'Quest', { $type: 'EndOfDay', traveled: 13 });
  projector.captureEvent(1, 'Quest', { $type: 'QuestEnded', location: 'The Eye of the World' });
}

test.beforeEach(() => projector.reset());

test('projections[name] is the object .by() returned, for every kind', () => {
  defineQuest();
  const party = projector.projectStream('Journey').named('Trip').by({});
  assert.equal(projector.projections.Trip, party);
  assert.equal(projector.projections.Party.kind, 'stream');
  assert.equal(projector.projections.Arrival.kind, 'event');
  assert.equal(projector.projections.Traveled.kind, 'aggregate');
});

test('stream projection: applyEvent uses $init for a null state, then applies the handler', () => {
  defineQuest();
  const party = projector.projections.Party;
  assert.deepEqual(party.applyEvent(null, { $type: 'QuestStarted', location: "Emond's Field" }),
    { active: true, traveled: 0, location: "Emond's Field" });
  assert.deepEqual(party.applyEvent(null, { $type: 'TownReached', location: 'Baerlon', traveled: 4 }),
    { active: true, location: 'Baerlon', traveled: 4 });
  const state = { active: true, traveled: 1, location: 'x' };
  const next = party.applyEvent(state, { $type: 'EndOfDay', traveled: 2 });
  assert.deepEqual(next, { active: true, traveled: 3, location: 'x' });
  assert.notEqual(next, state, 'the result is the document: a fresh copy, which no handler holds');
});

test('stream projection: a default $init gives {}', () => {
  const projection = projector.projectStream('Quest').named('Party').by({});
  assert.deepEqual(projection.applyEvent(null, { $type: 'QuestStarted' }), {});
});

test('stream projection: createSnapshot folds a list of events', () => {
  defineQuest();
  const state = projector.projections.Party.createSnapshot([
    { $type: 'QuestStarted', location: "Emond's Field" },
    { $type: 'EndOfDay', traveled: 3 },
    { $type: 'EndOfDay', traveled: 5 },
    { $type: 'TownReached', location: 'Baerlon', traveled: 4 }
  ]);
  assert.deepEqual(state, { location: 'Baerlon', traveled: 12, active: true });
});

test('stream projection: processEvent loads from its store, applies and saves', () => {
  defineQuest();
  const projection = projector.projections.Party;
  projection.processEvent(1, { $type: 'QuestStarted', location: "Emond's Field" });
  projection.processEvent(2, { $type: 'QuestStarted', location: 'Rivendell' });
  projection.processEvent(1, { $type: 'TownReached', location: 'Baerlon', traveled: 4 });
  projection.processEvent(2, { $type: 'TownReached', location: 'Moria', traveled: 100 });
  projection.processEvent(1, { $type: 'EndOfDay', traveled: 13 });
  assert.deepEqual(projection.store.find(1), { location: 'Baerlon', active: true, traveled: 17 });
  assert.deepEqual(projection.store.find(2), { location: 'Moria', active: true, traveled: 100 });
  projection.store.update(3, { location: 'Tar Valon' });
  assert.deepEqual(projection.store.find('3'), { location: 'Tar Valon' });
});

test('event projection: processEvent stores the transformed view under its $id', () => {
  let id = 0;
  const projection = projector.projectEvent('TownReached').named('Arrival').by(function (evt) {
    id = id + 1;
    return { town: evt.location, $id: id };
  });
  projection.processEvent(1, { $type: 'TownReached', $id: 1, location: 'Caemlyn' });
  projection.processEvent(2, { $type: 'TownReached', $id: 2, location: 'Four Kings' });
  projection.processEvent(3, { $type: 'TownReached', $id: 3, location: 'Whitebridge' });
  assert.deepEqual(projection.store.find(1), { $id: 1, town: 'Caemlyn' });
  assert.deepEqual(projection.store.find(2), { $id: 2, town: 'Four Kings' });
  assert.deepEqual(projection.store.find(3), { $id: 3, town: 'Whitebridge' });
});

test('event projection: processEvent takes an event without $type as one of its event type (the spike)', () => {
  const projection = projector.projectEvent('TownReached').named('Arrival').by(function (evt) {
    return { town: evt.location, type: evt.$type };
  });
  const evt = { $id: 1, location: 'Caemlyn' };
  projection.processEvent(1, evt);
  assert.deepEqual(projection.store.find(1), { town: 'Caemlyn', type: 'TownReached' });
  assert.deepEqual(evt, { $id: 1, location: 'Caemlyn' }, "the caller's event is left as it is");
  assert.throws(() => projection.processEvent(2, 'not an event'), /an event is a JSON object/);
});

test('aggregate: processEvent folds into the one document named after it', () => {
  defineQuest();
  const traveled = projector.projections.Traveled;
  traveled.processEvent('ignored', { $type: 'TownReached', traveled: 4 });
  traveled.processEvent('also-ignored', { $type: 'EndOfDay', traveled: 6 });
  assert.deepEqual(projector.store.findAggregate('Traveled'), { traveled: 10 });
  assert.equal(traveled.store, projector.store.byType());
});

test('projector.processEvent routes to stream projections of the type, event projections and aggregates', () => {
  defineQuest();
  captureQuests();
  assert.deepEqual(projector.store.find('Party', 1), { active: false, location: 'The Eye of the World', traveled: 17 });
  assert.deepEqual(projector.store.find('Party', 2), { active: true, location: 'Moria', traveled: 100 });
  assert.deepEqual(projector.store.findAggregate('Traveled'), { traveled: 117 });
  // No $id on the events or views: as in the original, the stream id keys the view.
  assert.deepEqual(projector.store.find('Arrival', 1), { town: 'Baerlon' });
  assert.deepEqual(projector.store.find('Arrival', 2), { town: 'Moria' });
});

test('projector.processEvent ignores stream projections of other stream types', () => {
  defineQuest();
  projector.processEvent('o-1', 'Order', { $type: 'TownReached', location: 'Nowhere', traveled: 1 });
  assert.equal(projector.store.find('Party', 'o-1'), undefined);
  assert.deepEqual(projector.store.findAggregate('Traveled'), { traveled: 1 });
});

test('projector.store: byId, byType, find, findAggregate, storeAggregate', () => {
  projector.store.storeAggregate('foo', { a: 1 });
  assert.deepEqual(projector.store.findAggregate('foo'), { a: 1 });
  assert.deepEqual(projector.store.byType().find('foo'), { a: 1 });
  projector.store.byId('Party').update('p', { b: 2 });
  assert.deepEqual(projector.store.find('Party', 'p'), { b: 2 });
  assert.equal(projector.store.byId('Party'), projector.store.byId('Party'));
});

test('reset() forgets projections and documents; activeProjectionNames() lists in definition order', () => {
  defineQuest();
  captureQuests();
  assert.deepEqual(projector.activeProjectionNames(), ['Party', 'Arrival', 'Traveled']);
  projector.reset();
  assert.deepEqual(projector.activeProjectionNames(), []);
  assert.equal(projector.store.findAggregate('Traveled'), undefined);
  assert.equal(projector.projections.Party, undefined);
});

test('redefining a projection in code replaces it (as the original did)', () => {
  projector.projectStream('Quest').named('Party').by({ A: (s) => { s.first = true; } });
  projector.projectStream('Quest').named('Party').by({ A: (s) => { s.second = true; } });
  projector.processEvent('q', 'Quest', { $type: 'A' });
  assert.deepEqual(projector.store.find('Party', 'q'), { second: true });
  assert.deepEqual(projector.activeProjectionNames(), ['Party']);
});

test('loadProjectionsFromFolder() loads every file, whatever path it requires the DSL by', (t) => {
  const folder = tempFolder(t, 'jsproj-');
  fs.writeFileSync(path.join(folder, 'Party.js'),
    "require('../../lib/projections').projectStream('Quest').named('Party').by({});\n");
  fs.writeFileSync(path.join(folder, 'Arrival.js'),
    "require('../../lib/pg-events').projectEvent('TownReached').named('Arrival').by(function (e) { return {}; });\n");
  fs.writeFileSync(path.join(folder, 'Traveled.js'), "projections.aggregate('Traveled').by({});\n");
  fs.writeFileSync(path.join(folder, 'notes.txt'), 'not a projection');
  projector.projectStream('Old').named('Old').by({});
  assert.equal(projector.loadProjectionsFromFolder(folder), projector);
  assert.deepEqual(projector.activeProjectionNames(), ['Arrival', 'Party', 'Traveled']);
  assert.equal(projector.projections.Party.file, 'Party.js');
});

test('loadProjectionsFromFolder() reports a syntax error with file and line', (t) => {
  const folder = tempFolder(t, 'jsproj-');
  fs.writeFileSync(path.join(folder, 'Broken.js'), "projections.aggregate('B').by({\n  A: function () {}\n  B: 1\n});\n");
  assert.throws(() => projector.loadProjectionsFromFolder(folder), (e) =>
    e.kind === 'ProjectionSyntaxError' && e.file === 'Broken.js' && e.line === 3 && /^Broken\.js:3: SyntaxError/.test(e.message));
});

test('a throwing handler fails with the projection, event, stream and the handler in the stack', () => {
  projector.projectStream('Quest').named('Fragile').by({
    Boom: function () { throw new Error('boom'); }
  });
  assert.throws(
    () => projector.processEvent('q1', 'Quest', { $type: 'Boom', $id: 'e1' }),
    (e) => e.kind === 'ProjectionHandlerError' && e.projection === 'Fragile' && e.eventId === 'e1' &&
      e.eventType === 'Boom' && e.streamId === 'q1' && e.position === 1 && /Boom/.test(e.stack) &&
      /boom/.test(e.message)
  );
  assert.equal(projector.store.find('Fragile', 'q1'), undefined, 'nothing is written');
});

test('an event without $type is an error', () => {
  defineQuest();
  assert.throws(() => projector.processEvent(1, 'Quest', { location: 'x' }), (e) => e.kind === 'InvalidEventError' && /\$type/.test(e.message));
  assert.throws(() => projector.projections.Party.applyEvent(null, { location: 'x' }), /Missing \$type/);
});

// Installed by its name, or under the old one with an npm alias (`npm install jsproj@npm:@jsproj/projections`).
for (const name of ['@jsproj/projections', 'jsproj']) {
  test(`require('${name}') resolves to the projector from outside the package`, (t) => {
    const app = tempFolder(t, 'jsproj-app-');
    fs.mkdirSync(path.join(app, 'node_modules', path.dirname(name)), { recursive: true });
    fs.symlinkSync(path.resolve(__dirname, '..'), path.join(app, 'node_modules', name), 'dir');
    fs.writeFileSync(path.join(app, 'main.js'), [
      `const projector = require('${name}');`,
      `const same = require('${name}/projections');`,
      "projector.aggregate('Count').by({ A: (s) => { s.n = (s.n || 0) + 1; } });",
      "projector.processEvent('s', 'S', { $type: 'A' });",
      "console.log(JSON.stringify({ same: same === projector, count: projector.store.findAggregate('Count') }));"
    ].join('\n'));
    const out = JSON.parse(execFileSync(process.execPath, [path.join(app, 'main.js')], { cwd: app, encoding: 'utf8' }));
    assert.deepEqual(out, { same: true, count: { n: 1 } });
  });
}
