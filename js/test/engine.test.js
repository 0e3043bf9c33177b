'use strict';
// The batch API hosts use (route, apply), events-file parsing and the
// extensions, through the Node host's engine.

const test = require('node:test');
const assert = require('node:assert/strict');

const jsprojModule = require('..');
const engine = jsprojModule.engine;

function record(position, streamId, streamType, version, event) {
  return { position, streamId, streamType, version, timestamp: '2026-01-01T00:00:00.000Z', metadata: null, event };
}

function load(files) {
  const projector = jsprojModule.createProjector();
  jsprojModule.loadSources(projector, Object.entries(files).map(([file, source]) => ({ file, source })));
  return projector;
}

const QUEST = {
  'Party.js': `projections.projectStream('Quest').named('Party').by({
    $init: function () { return { towns: [] }; },
    TownReached: function (s, e) { s.towns.push(e.location); },
    Abandoned: function () { return projections.DELETE; }
  });`,
  'Total.js': `projections.aggregate('Total').by({ TownReached: function (s) { s.n = (s.n || 0) + 1; } });`,
  'Arrival.js': `projections.projectEvent('TownReached').named('Arrival').by(function (e) { return { at: e.location }; });`,
  'Towns.js': `projections.projectView('Towns').identifiedBy(function (e) { return e.location; }).by({
    TownReached: function (s, e, meta) { s.by = (s.by || []).concat([meta.streamId]); }
  }).async();`
};

test('route names the documents a batch touches; event projections load nothing', () => {
  const projector = load(QUEST);
  const keys = engine.route(projector, [
    record(1, 'q1', 'Quest', 1, { $type: 'TownReached', $id: 'a', location: 'Bree' }),
    record(2, 'q2', 'Quest', 1, { $type: 'TownReached', $id: 'b', location: 'Bree' }),
    record(3, 'q1', 'Quest', 2, { $type: 'Other', $id: 'c' })
  ]);
  assert.deepEqual(JSON.parse(JSON.stringify(keys)), { Party: ['q1', 'q2'], Total: ['Total'], Towns: ['Bree'] });
  assert.deepEqual(JSON.parse(JSON.stringify(engine.route(projector, [record(1, 'q', 'Quest', 1, { $type: 'TownReached', location: 'X' })], { projections: ['Towns'] }))), { Towns: ['X'] });
});

test('apply returns upserts and deletions per projection, from the documents supplied', () => {
  const projector = load(QUEST);
  const result = engine.apply(projector, [
    record(5, 'q1', 'Quest', 3, { $type: 'TownReached', $id: 'e5', location: 'Moria' }),
    record(6, 'q2', 'Quest', 2, { $type: 'Abandoned', $id: 'e6' })
  ], {
    Party: { q1: { towns: ['Bree'] }, q2: { towns: ['Shire'] } },
    Total: { Total: { n: 2 } },
    Towns: { Moria: null }
  });
  assert.deepEqual(result.errors, []);
  const changes = JSON.parse(JSON.stringify(result.changes));
  assert.deepEqual(changes.Party, { kind: 'stream', upserts: { q1: { towns: ['Bree', 'Moria'] } }, deletes: ['q2'] });
  assert.deepEqual(changes.Total, { kind: 'aggregate', upserts: { Total: { n: 3 } }, deletes: [] });
  assert.deepEqual(changes.Arrival, { kind: 'event', upserts: { e5: { at: 'Moria' } }, deletes: [] });
  assert.deepEqual(changes.Towns, { kind: 'view', upserts: { Moria: { by: ['q1'] } }, deletes: [] });
});

test('apply refuses to guess a document the host did not supply', () => {
  const projector = load(QUEST);
  assert.throws(
    () => engine.apply(projector, [record(1, 'q1', 'Quest', 1, { $type: 'TownReached', location: 'X' })], { Party: {} }),
    (e) => e.kind === 'EngineError' && /q1/.test(e.message)
  );
});

test('a failing projection contributes no changes and one error; the others are unaffected', () => {
  const projector = load({
    ...QUEST,
    'Fragile.js': `projections.aggregate('Fragile').by({ TownReached: function (s, e) {
      s.n = (s.n || 0) + 1; if (e.location === 'Bad') throw new TypeError('bad town'); } });`
  });
  const events = [
    record(1, 'q1', 'Quest', 1, { $type: 'TownReached', $id: 'a', location: 'Good' }),
    record(2, 'q1', 'Quest', 2, { $type: 'TownReached', $id: 'b', location: 'Bad' }),
    record(3, 'q1', 'Quest', 3, { $type: 'TownReached', $id: 'c', location: 'Bad' })
  ];
  const docs = { Party: { q1: null }, Total: { Total: null }, Fragile: { Fragile: { n: 10 } }, Towns: { Good: null, Bad: null } };
  const result = engine.apply(projector, events, docs);
  assert.equal(result.errors.length, 1, 'the projection stops at its first error');
  assert.equal(result.errors[0].projection, 'Fragile');
  assert.equal(result.errors[0].position, 2);
  assert.deepEqual(result.errors[0].error, { name: 'TypeError', message: 'bad town' });
  assert.equal(result.changes.Fragile, undefined);
  assert.deepEqual(result.changes.Total.upserts.Total, { n: 3 });
});

test('options.projections runs only the named projections, and rejects unknown names', () => {
  const projector = load(QUEST);
  const result = engine.apply(projector, [record(1, 'q', 'Quest', 1, { $type: 'TownReached', location: 'X' })],
    { Total: { Total: null } }, { projections: ['Total'] });
  assert.deepEqual(Object.keys(result.changes), ['Total']);
  assert.throws(() => engine.apply(projector, [], {}, { projections: ['Nope'] }), (e) => e.kind === 'UnknownProjectionError');
});

test('describe reports kind, lifecycle and subscriptions', () => {
  const described = engine.describe(load(QUEST));
  assert.deepEqual(described.map((d) => [d.name, d.kind, d.lifecycle]), [
    ['Arrival', 'event', 'inline'], ['Party', 'stream', 'inline'], ['Total', 'aggregate', 'inline'], ['Towns', 'view', 'async']
  ]);
  assert.deepEqual(described.find((d) => d.name === 'Party').eventTypes, ['TownReached', 'Abandoned']);
});

test('.index() declares the fields a projection is indexed by, checked, in describe', () => {
  const described = engine.describe(load({
    'P.js': `projections.projectStream('Quest').named('Party').by({ A: function () {} })
               .index('location').async().index('party.leader').index('location');
             projections.projectEvent('A').named('Plain').by(function () { return {}; });`
  }));
  assert.deepEqual(described.find((d) => d.name === 'Party').indexes, ['location', 'party.leader']);
  assert.equal(described.find((d) => d.name === 'Party').lifecycle, 'async');
  assert.deepEqual(described.find((d) => d.name === 'Plain').indexes, []);
  const refused = [
    ["projections.aggregate('T').by({}).index('n')", /an aggregate has one/],
    ["projections.projectEvent('A').named('E').by(function () {}).index('a b')", /not "a b"/],
    ["projections.projectEvent('A').named('E').by(function () {}).index(\"x'); drop table t; --\")", /\.index\(\) takes a field/],
    ["projections.projectEvent('A').named('E').by(function () {}).index('1st')", /\.index\(\) takes a field/],
    ["projections.projectEvent('A').named('E').by(function () {}).index('a..b')", /\.index\(\) takes a field/],
    ["projections.projectEvent('A').named('E').by(function () {}).index(7)", /not 7/]
  ];
  for (const [source, pattern] of refused) {
    assert.throws(() => load({ 'A.js': source }), (e) => e.kind === 'ProjectionDefinitionError' && pattern.test(e.message), source);
  }
});

test('.version() numbers a definition, checked, in describe (default 1)', () => {
  const described = engine.describe(load({
    'P.js': `projections.projectStream('Quest').named('Party').by({ A: function () {} }).async().version(3);
             projections.projectEvent('A').named('Plain').by(function () { return {}; });`
  }));
  assert.equal(described.find((d) => d.name === 'Party').version, 3);
  assert.equal(described.find((d) => d.name === 'Plain').version, 1);
  for (const bad of ['0', '1.5', "'2'", '1000000']) {
    const source = `projections.aggregate('T').by({}).version(${bad})`;
    assert.throws(() => load({ 'A.js': source }),
      (e) => e.kind === 'ProjectionDefinitionError' && /\.version\(\) takes a whole number/.test(e.message), source);
  }
});

test('an unknown lifecycle set by hand is reported', () => {
  const projector = jsprojModule.createProjector();
  projector.aggregate('Odd').by({}).lifecycle = 'sometimes';
  assert.throws(() => engine.describe(projector), (e) => e.kind === 'ProjectionDefinitionError' && /sometimes/.test(e.message));
});

test('definition problems are specific', () => {
  const cases = [
    ["projections.aggregate('a-b').by({})", /not a safe identifier/],
    ["projections.aggregate('x'.repeat(48)).by({})", /at most 47/],
    ["projections.aggregate('A').by([])", /needs an object/],
    ["projections.aggregate('A').by({ $init: 5 })", /\$init is a number/],
    ["projections.aggregate('A').by({ $removed: function () {} })", /unknown special key \$removed \(known: \$init, \$any, \$deleted\)/],
    ["projections.projectStream('').named('A').by({})", /stream type of A must not be empty/],
    ["projections.projectView('V').by({})", /needs \.identifiedBy/],
    ["projections.projectView('V').identifiedBy('x').by({})", /identifiedBy\(\) needs a function/],
    ["projections.projectEvent('E').named('A').by({})", /needs a transform function/],
    ["undefinedThing.call()", /A\.js:1: ReferenceError: undefinedThing is not defined/]
  ];
  for (const [source, pattern] of cases) {
    assert.throws(() => load({ 'A.js': source }), (e) => e.kind === 'ProjectionDefinitionError' && pattern.test(e.message), source);
  }
});

test('handlers that return null, or view keys that are not ids, are handler errors', () => {
  const projector = load({
    'A.js': `projections.aggregate('Nully').by({ A: function () { return null; } });
             projections.projectView('BadKey').identifiedBy(function (e) { return {}; }).by({ A: function () {} });`
  });
  const result = engine.apply(projector, [record(1, 's', 'S', 1, { $type: 'A' })], { Nully: { Nully: null } });
  assert.deepEqual(result.errors.map((e) => e.projection).sort(), ['BadKey', 'Nully']);
  assert.match(result.errors.find((e) => e.projection === 'Nully').message, /returned null: return projections.DELETE/);
  assert.match(result.errors.find((e) => e.projection === 'BadKey').message, /identifiedBy returned a key that must be a string/);
});

test('a shared object returned by $init does not tie documents together', () => {
  const projector = load({
    'A.js': `var shared = { seen: [] };
      projections.projectStream('S').named('Seen').by({ $init: function () { return shared; }, A: function (s, e) { s.seen.push(e.n); } });`
  });
  const result = engine.apply(projector, [record(1, 'a', 'S', 1, { $type: 'A', n: 1 }), record(2, 'b', 'S', 1, { $type: 'A', n: 2 })],
    { Seen: { a: null, b: null } });
  assert.deepEqual(JSON.parse(JSON.stringify(result.changes.Seen.upserts)), { a: { seen: [1] }, b: { seen: [2] } });
});

test('odd but valid ids such as __proto__ are ordinary keys', () => {
  const projector = load(QUEST);
  const result = engine.apply(projector, [record(1, '__proto__', 'Quest', 1, { $type: 'TownReached', $id: 'constructor', location: '__proto__' })],
    JSON.parse('{"Party": {"__proto__": null}, "Total": {"Total": null}, "Towns": {"__proto__": null}}'));
  assert.deepEqual(result.errors, []);
  assert.deepEqual(JSON.parse(JSON.stringify(result.changes)).Party.upserts, JSON.parse('{"__proto__": {"towns": ["__proto__"]}}'));
  assert.deepEqual(Object.keys(result.changes.Arrival.upserts), ['constructor']);
});

test('events files: JSON array, one object, or JSON Lines; malformed input names the line', () => {
  assert.equal(engine.parseEvents('[{"type": "T", "data": {"$type": "A"}}]').messages.length, 1);
  assert.equal(engine.parseEvents('{\n "type": "T",\n "data": {"$type": "A"}\n}').messages.length, 1);
  assert.equal(engine.parseEvents('\uFEFF{"type":"T","data":[]}\n\n{"type":"T","data":[]}\n').messages.length, 2);
  assert.deepEqual(engine.parseEvents('  ').messages, []);
  assert.throws(() => engine.parseEvents('{"type":"T"}\n{"type": oops}\n'), (e) => e.kind === 'EventsFileError' && e.line === 2);
  assert.throws(() => engine.parseEvents('[\n{"type":"T"},\n{"type": oops}\n]'), (e) => e.kind === 'EventsFileError' && /not valid JSON/.test(e.message));
  assert.throws(() => engine.normalize(engine.parseEvents('"just a string"')), (e) => e.kind === 'InvalidEventError' && /not a string/.test(e.message));
  assert.throws(() => engine.normalize({ messages: { not: 'a list' } }), (e) => e.kind === 'EventsFileError');
});

test('append messages are checked before anything is numbered', () => {
  const bad = [
    ['[1]', /an append message is an object/],
    ['[{"type": "T", "data": {"$type": "A"}, "event": 1}]', /unknown field "event"/],
    ['[{"id": "", "type": "T", "data": {"$type": "A"}}]', /stream id must not be empty/],
    ['[{"id": 5, "type": "T", "data": {"$type": "A"}}]', /stream id must be a string/],
    [JSON.stringify([{ id: 'x'.repeat(256), type: 'T', data: { $type: 'A' } }]), /longer than 255/],
    ['[{"id": "new", "data": {"$type": "A"}}]', /needs a "type"/],
    ['[{"id": "s", "type": "T", "data": {"$type": "A"}}, {"id": "s", "type": "U", "data": {"$type": "A"}}]', /is a T stream, not U/],
    ['[{"type": "T", "data": []}]', /holds no events/],
    ['[{"type": "T"}]', /has no "data"/],
    ['[{"type": "T", "data": [[1]]}]', /an event is a JSON object/],
    ['[{"type": "T", "data": {"$type": 7}}]', /Missing \$type/],
    ['[{"type": "T", "data": {"$type": "A", "$id": "not-a-uuid"}}]', /must be a UUID/],
    ['[{"type": "T", "data": [{"$type": "A", "$id": "00000000-0000-4000-8000-000000000001"}, {"$type": "A", "$id": "00000000-0000-4000-8000-000000000001"}]}]', /used twice/],
    ['[{"type": "T", "data": {"$type": "A", "s": "nul\\u0000"}}]', /NUL character/],
    ['[{"type": "T", "data": {"$type": "A", "s": "\\ud800"}}]', /unpaired surrogate/],
    ['[{"type": "T", "timestamp": "yesterday", "data": {"$type": "A"}}]', /ISO 8601/],
    ['[{"type": "T", "timestamp": "2026-01-05T08:00:00", "data": {"$type": "A"}}]', /with a zone/],
    ['[{"type": "T", "timestamp": "2026-02-30T08:00:00Z", "data": {"$type": "A"}}]', /ISO 8601/],
    ['[{"type": "T", "metadata": [1], "data": {"$type": "A"}}]', /metadata must be an object/],
    ['[{"type": "T", "expected_version": -1, "data": {"$type": "A"}}]', /whole number >= 0/],
    [JSON.stringify([{ type: 'T', data: { $type: 'A', deep: JSON.parse('['.repeat(600) + ']'.repeat(600)) } }]), /nested deeper than 512/]
  ];
  for (const [text, pattern] of bad) {
    assert.throws(() => engine.normalize(engine.parseEvents(text)), (e) => e.kind === 'InvalidEventError' && pattern.test(e.message), text.slice(0, 80));
  }
});

test('normalize numbers positions and versions, and honours existing streams', () => {
  const records = engine.normalize(engine.parseEvents('[{"id": "s", "expected_version": 2, "data": [{"$type": "A"}, {"$type": "B"}]}]'),
    { position: 10, streams: { s: { type: 'T', version: 2 } }, now: '2026-05-01T00:00:00.000Z' });
  assert.deepEqual(records.map((r) => [r.position, r.streamId, r.streamType, r.version, r.timestamp]), [
    [11, 's', 'T', 3, '2026-05-01T00:00:00.000Z'], [12, 's', 'T', 4, '2026-05-01T00:00:00.000Z']
  ]);
});

test('console output of projections is collected with the projection that printed it', () => {
  const projector = load({ 'A.js': "console.log('loading', {a: 1}); projections.aggregate('Talky').by({ A: function (s, e) { console.warn('saw', e.$type); } });" });
  engine.drainLogs();
  engine.apply(projector, [record(7, 's', 'S', 1, { $type: 'A' })], { Talky: { Talky: null } });
  assert.deepEqual(engine.drainLogs(), [{ level: 'warn', file: 'A.js', projection: 'Talky', position: 7, message: 'saw A' }]);
});

test('the simulate CLI reports usage errors and missing files on stderr', () => {
  const { spawnSync } = require('child_process');
  const path = require('path');
  const cli = path.join(__dirname, '..', 'bin', 'simulate.js');
  const usage = spawnSync(process.execPath, [cli], { encoding: 'utf8' });
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /^error: usage: simulate.js/);
  const missing = spawnSync(process.execPath, [cli, '/nonexistent-folder', '/nonexistent.json'], { encoding: 'utf8' });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^error: no such file or folder: \/nonexistent/);
  assert.equal(missing.stdout, '');
});

test('REPL input is evaluated with the DSL against a scratch projector, through the host interface', () => {
  const answer = (text) => JSON.parse(engine.host.evaluate(JSON.stringify({ code: text })));
  assert.equal(answer('var x = 20; x + 1').ok.value, '21');
  const defined = answer("projections.aggregate('Scratch').by({ A: function () {} }); 'ok'").ok;
  assert.equal(defined.value, '"ok"');
  assert.deepEqual(defined.projections.map((p) => [p.name, p.file]), [['Scratch', 'repl']]);
  assert.equal(answer('[1, 2]').ok.value, '[\n  1,\n  2\n]');
  assert.equal(answer('(function named() {})').ok.value, '[Function: named]');
  const failed = answer('null.x').error;
  assert.equal(failed.kind, 'ProjectionDefinitionError');
  assert.match(failed.message, /^TypeError: Cannot read properties of null/);
  assert.equal(answer("require('fs')").error.kind, 'ProjectionDefinitionError');
});

test('an engine entry refuses a call made while one of its calls runs, and the next call goes on', () => {
  // Projection code cannot name the host's entries (a file's scope shadows them). Were it handed one,
  // its call would come while the engine's own call runs (realm.busy): refused, whatever it asks.
  const host = engine.host;
  const loaded = JSON.parse(host.load(JSON.stringify([{ file: 'Count.js',
    source: "projections.aggregate('Count').by({ Go: function (s) { s.n = (s.n || 0) + 1; } });" }])));
  assert.ok(loaded.ok);
  const batch = JSON.stringify({ events: [record(1, 's', 'S', 1, { $type: 'Go', $id: 'e1' })],
    documents: { Count: { Count: null } }, options: {} });
  engine.realm.busy = true;                    // as while a handler of the engine's call runs
  try {
    for (const op of ['route', 'apply', 'load', 'normalize', 'evaluate']) {
      const refused = JSON.parse(host[op](batch));
      assert.equal(refused.error.kind, 'SandboxError', op);
      assert.match(refused.error.message, /refuses a call made while one of its calls runs/);
    }
  } finally {
    engine.realm.busy = false;
  }
  const applied = JSON.parse(host.apply(batch));
  assert.deepEqual(applied.ok.changes.Count.upserts, { Count: { n: 1 } }, 'the next call goes on');
  assert.equal(engine.realm.busy, false, 'a call that ends leaves the engine free');
});
