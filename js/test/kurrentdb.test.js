'use strict';
// KurrentDB's projection DSL as a front end (js/lib/kurrentdb.js): what a file is refused for, by name.
// What it computes runs in every host in tests/conformance/kurrentdb-*.

const test = require('node:test');
const assert = require('node:assert/strict');

const jsprojModule = require('..');

function loadFile(file, source) {
  const projector = jsprojModule.createProjector();
  jsprojModule.loadSources(projector, [{ file, source }]);
  return projector;
}

function refused(file, source, pattern) {
  assert.throws(() => loadFile(file, source), (e) => {
    assert.equal(e.kind, 'ProjectionDefinitionError');
    assert.match(e.message, pattern);
    return true;
  });
}

test('a KurrentDB file defines one view named after the file', () => {
  const projector = loadFile('dir/xbox-one.s counter.js', "fromAll().when({ $init: function () { return { n: 0 }; } });");
  assert.deepEqual(Object.keys(projector.projections), ['xbox_one_s_counter']);
  assert.equal(projector.projections.xbox_one_s_counter.kind, 'view');
});

test('a second KurrentDB projection in one file is refused', () => {
  refused('Two.js', "fromAll().when({}); fromStream('s').when({});", /a file holds one KurrentDB projection, named after the file \(Two\)/);
});

test('a selector without when() is refused, never left defining nothing', () => {
  refused('Half.js', "fromCategory('cart').foreachStream();", /Half: a KurrentDB projection needs \.when/);
});

test('options are KurrentDB\'s, letter case aside, and what cannot apply is refused by name', () => {
  refused('O.js', "options({ colour: 'red' }); fromAll().when({});", /options: Unrecognized option: colour/);
  refused('O.js', "options({ processingLag: 'soon' }); fromAll().when({});", /options: Invalid value for processingLag: it must be a number, not a string/);
  loadFile('O.js', "options({ BISTATE: true }); fromAll().when({});");
  refused('O.js', "options({ $includeLinks: true }); fromAll().when({});", /jsproj gives projections no link events/);
  refused('O.js', "options({ reorderEvents: true }); fromStream('a').when({});", /reorderEvents needs fromStreams\(\) of more than one stream/);
  loadFile('O.js', "options({ reorderEvents: true, processingLag: 100 }); fromStreams('a', 'b').when({});");
});

test('the chain offers only what KurrentDB offers after each step', () => {
  refused('S.js', "fromStream('a').foreachStream().when({});", /S: foreachStream projections are not supported on stream based sources/);
  refused('C.js', "fromCategories('a', 'b').foreachStream().when({});", /foreachStream projections are not supported/);
  refused('P.js', "fromAll().partitionBy(function (e) { return 'k'; }).foreachStream().when({});", /foreachStream is not a function/);
  refused('D.js', "fromAll().when({ $deleted: function () {} });", /Deleted stream notifications are only supported with foreachStream\(\)/);
  refused('I.js', "fromCategory('a').foreachStream().when({ $initShared: function () { return {}; }, $deleted: function () {} });",
    /Cannot handle deletes in bi-state projections/);
  refused('R.js', "fromAll().when({ $initShared: function () { return {}; } }).outputState();", /results of a bi-state projection are not supported/);
  refused('U.js', "fromAll().when({ $unknown: function () {} });", /unknown handler \$unknown/);
  refused('F.js', "fromStream(42).when({});", /fromStream\(\) takes stream ids \(text\), not a number/);
});

test('emit fails the handler of a projection the call does not let emit; the other output functions, by name', () => {
  for (const [call, pattern] of [["emit('out', 'Done', {})", /emit\(\): E may not write events: only an async projection deployed with --emit E/],
    ["copyTo('out', e)", /copyTo\(\) is not supported by jsproj yet/], ["linkStreamTo('out', 's')", /linkStreamTo\(\) is not supported/]]) {
    const projector = loadFile('E.js', `fromAll().when({ Go: function (s, e) { ${call}; } });`);
    const result = jsprojModule.engine.apply(projector,
      [{ position: 1, streamId: 's', streamType: 'S', version: 1, timestamp: '2026-01-01T00:00:00.000Z', metadata: null,
        event: { $type: 'Go', $id: 'a' } }], { E: { E: null } });
    assert.equal(result.errors.length, 1);
    assert.match(result.errors[0].message, pattern);
  }
});

// Review 5 (a blind attack on this front end): each break, kept.
function applied(files, records, options) {
  const projector = jsprojModule.createProjector();
  jsprojModule.loadSources(projector, Object.entries(files).map(([file, source]) => ({ file, source })));
  const keys = jsprojModule.engine.route(projector, records);
  const documents = {};
  for (const [name, ids] of Object.entries(keys)) documents[name] = Object.fromEntries(ids.map((id) => [id, null]));
  return jsprojModule.engine.apply(projector, records, documents, options);
}

function rec(position, streamId, event) {
  return { position, streamId, streamType: 'x', version: position, timestamp: '2026-01-01T00:00:00.000Z', metadata: null, event };
}

test('review 5: a __proto__ key of the data is an own key of the body, never its prototype', () => {
  const event = JSON.parse('{"$type": "A", "$id": "a", "__proto__": {"isAdmin": true}}');
  const result = applied({ 'r.js': `fromAll().foreachStream().when({ $any: function (s, e) {
    s.isAdmin = e.body.isAdmin === true; s.own = Object.keys(e.body); s.proto = Object.getPrototypeOf(e.body) === Object.prototype; } })` },
  [rec(1, 'x-1', event)]);
  assert.deepEqual(result.errors, []);
  assert.deepEqual(result.changes.r.upserts['x-1'], { isAdmin: false, own: ['__proto__'], proto: true });
});

test('review 5: a partition named like the projection is refused, not merged with the root', () => {
  const result = applied({ 'p.js': "fromAll().partitionBy(function (e) { return e.body.k; }).when({ $any: function (s) { s.n = 1; } })" },
    [rec(1, 'x-1', { $type: 'A', $id: 'a', k: 'p' })]);
  assert.equal(result.errors.length, 1);
  assert.match(result.errors[0].message, /partitionBy returned "p", the key of the root partition's document/);
});

test('review 5: an emit caught by the handler fails it all the same', () => {
  for (const where of ["when({ A: function (s) { try { emit('o', 'T', {}); } catch (e) {} } })",
    "partitionBy(function (e) { try { linkTo('o', e); } catch (x) {} return 'k'; }).when({ A: function (s) { s.n = 1; } })"]) {
    const result = applied({ 'e.js': 'fromAll().' + where }, [rec(1, 'x-1', { $type: 'A', $id: 'a' })]);
    assert.equal(result.errors.length, 1, where);
    assert.match(result.errors[0].message, /(emit\(\): e may not write events|linkTo\(\) can be called only from a handler)/);
  }
});

// emit and linkTo (js/lib/emits.js): what a call that lets a projection emit hands to its host.
const EMITTER = `fromCategory('order').foreachStream().when({
  Placed: function (s, e) { emit('shipping-' + e.body.n, 'ShipOrder', { order: e.streamId }, { by: 'me' }); linkTo('placed', e); },
  Bad: function (s, e) { emit('x-1', 'T', {}); throw new Error('no'); }
})`;

test('emits come with the changes: each with its source event and index, in call order, with jsproj metadata', () => {
  const result = applied({ 'em.js': EMITTER }, [rec(1, 'order-1', { $type: 'Placed', $id: 'e1', n: 7 }),
    rec(2, 'order-2', { $type: 'Placed', $id: 'e2', n: 8 })], { emits: ['em'] });
  assert.deepEqual(result.errors, []);
  const meta = (id, n) => ({ $causedBy: id, $correlationId: id, $projection: 'em', $emitDepth: n });
  assert.deepEqual(result.changes.em.emits, [
    { causedBy: 'e1', index: 0, streamId: 'shipping-7', eventType: 'ShipOrder', data: { order: 'order-1' }, metadata: { by: 'me', ...meta('e1', 1) } },
    { causedBy: 'e1', index: 1, streamId: 'placed', eventType: '$>', data: { link: '0@order-1' }, metadata: meta('e1', 1) },
    { causedBy: 'e2', index: 0, streamId: 'shipping-8', eventType: 'ShipOrder', data: { order: 'order-2' }, metadata: { by: 'me', ...meta('e2', 1) } },
    { causedBy: 'e2', index: 1, streamId: 'placed', eventType: '$>', data: { link: '1@order-2' }, metadata: meta('e2', 1) }]);
});

test('an event a policy skips takes its emits with it; the events around it keep theirs', () => {
  const result = applied({ 'em.js': EMITTER }, [rec(1, 'order-1', { $type: 'Placed', $id: 'e1', n: 1 }),
    rec(2, 'order-1', { $type: 'Bad', $id: 'e2' }), rec(3, 'order-1', { $type: 'Placed', $id: 'e3', n: 3 })],
  { emits: ['em'], onError: { em: 'skip' } });
  assert.equal(result.errors.length, 1);
  assert.deepEqual(result.changes.em.emits.map((e) => [e.causedBy, e.index]), [['e1', 0], ['e1', 1], ['e3', 0], ['e3', 1]]);
});

test('a projection failing without a policy emits nothing in the call', () => {
  const result = applied({ 'em.js': EMITTER }, [rec(1, 'order-1', { $type: 'Placed', $id: 'e1', n: 1 }),
    rec(2, 'order-1', { $type: 'Bad', $id: 'e2' })], { emits: ['em'] });
  assert.equal(result.errors.length, 1);
  assert.equal(result.changes.em, undefined);
});

test('emit refuses what could not be an event, and a chain of emits past its depth, even when caught', () => {
  for (const [call, pattern] of [["emit('$sys', 'T', {})", /system stream/], ["emit('s', '$T', {})", /starts with \$/],
    ["emit('s', 'T', [1])", /the body must be an object, not an array/], ["emit('s', 'T', { $type: 'U' })", /\$type or \$id/],
    ["emit('s', 'T', {}, { $causedBy: 'x' })", /metadata key "\$causedBy"/], ["emit('s', 'T')", /takes \(streamId, eventType, body/],
    ["linkTo('s', { streamId: 'o' })", /sequenceNumber/], ["emit('', 'T', {})", /non-empty string/]]) {
    const result = applied({ 'e.js': `fromAll().when({ A: function (s, e) { try { ${call}; } catch (x) {} } })` },
      [rec(1, 'x-1', { $type: 'A', $id: 'a' })], { emits: ['e'] });
    assert.equal(result.errors.length, 1, call);
    assert.match(result.errors[0].message, pattern, call);
  }
  const deep = { ...rec(1, 'x-1', { $type: 'A', $id: 'a' }), metadata: { $emitDepth: 16 } };
  const result = applied({ 'e.js': "fromAll().when({ A: function (s, e) { emit('s', 'T', {}); } })" }, [deep], { emits: ['e'] });
  assert.match(result.errors[0].message, /a chain of 16 emitted events \(at most 16\)/);
});

test('links reach no $any handler, of either DSL', () => {
  const link = rec(1, 'x-1', { $type: '$>', $id: 'a', link: '0@y-1' });
  const result = applied({ 'k.js': 'fromAll().when({ $any: function (s) { s.n = (s.n || 0) + 1; } })',
    'j.js': "projections.projectView('J').identifiedBy(function () { return 'j'; }).by({ $any: function (s) { s.n = 1; } })" }, [link]);
  assert.deepEqual(Object.keys(result.changes), []);
});

// Review 6 (a blind attack on emit and linkTo): each break, kept.
test('review 6: an emit caught while the file loads fails the load', () => {
  refused('l.js', "try { emit('x', 'L', {}); } catch (e) {} fromAll().when({ $any: function () {} });",
    /emit\(\) can be called only from a handler/);
});

test('review 6: linkTo refuses a sequence number no event can have; one event emits at most a megabyte', () => {
  for (const [call, pattern] of [["linkTo('l', { streamId: 'x-1', sequenceNumber: 1e20 })", /a whole number from 0 to 2\^53 - 1/],
    ["for (var i = 0; i < 20; i++) emit('s', 'T', { pad: 'x'.repeat(100000) })", /more than 1048576 characters of JSON emitted for one event/]]) {
    const result = applied({ 'e.js': `fromAll().when({ A: function (s, e) { try { ${call}; } catch (x) {} } })` },
      [rec(1, 'x-1', { $type: 'A', $id: 'a' })], { emits: ['e'] });
    assert.equal(result.errors.length, 1, call);
    assert.match(result.errors[0].message, pattern, call);
  }
});

// Results (outputState, transformBy, filterBy, outputTo) and $created.
const XBOX = `fromAll().when({
  $init: function () { return { count: 0 }; },
  ItemAdded: function (s, e) { if (e.body.Description.indexOf('Xbox One S') >= 0) s.count += 1; }
})`;
const items = ['Xbox One S 1TB (Console)', 'Gears of War 4', 'Xbox One S 500GB (Console)'].map((d, i) =>
  rec(i + 1, 'shoppingCart-' + i, { $type: 'ItemAdded', $id: 'e' + i, Description: d }));
const written = (result, name) => (result.changes[name].emits || []).map((e) => [e.streamId, e.eventType, e.data]);

test("KurrentDB's tutorial with outputState(): a Result per change of the state, where the projection may write events", () => {
  const result = applied({ 'xbox-one-s-counter.js': XBOX + '.outputState()' }, items, { emits: ['xbox_one_s_counter'] });
  assert.deepEqual(written(result, 'xbox_one_s_counter'), [
    ['projections-xbox_one_s_counter-result', 'Result', { count: 1 }],
    ['projections-xbox_one_s_counter-result', 'Result', { count: 2 }]]);
  const elsewhere = applied({ 'xbox-one-s-counter.js': XBOX + '.outputState()' }, items);
  assert.deepEqual(elsewhere.errors, []);
  assert.equal(elsewhere.changes.xbox_one_s_counter.emits, undefined, 'no results where it may not write events');
  assert.deepEqual({ ...elsewhere.changes.xbox_one_s_counter.upserts }, { xbox_one_s_counter: { count: 2 } });
});

test('transformBy and filterBy shape the result, filterBy by exactly true; resultStreamName names its stream', () => {
  const source = "options({ resultStreamName: 'xboxes' });\n" + XBOX +
    '.transformBy(function (s) { return { Total: s.count }; }).filterBy(function (r) { return r.Total > 1 ? true : 1; })';
  const result = applied({ 'x.js': source }, items, { emits: ['x'] });
  assert.deepEqual(written(result, 'x'), [['xboxes', 'ResultRemoved', {}], ['xboxes', 'Result', { Total: 2 }]]);
  const plain = applied({ 'x.js': XBOX + '.transformBy(function (s) { return s.count; })' }, items, { emits: ['x'] });
  assert.deepEqual(written(plain, 'x').map((e) => e[2]), [{ value: 1 }, { value: 2 }], 'a result that is not an object is its value');
});

test("a partition's results go to outputTo's pattern; $created runs once per partition, before its first handler", () => {
  const source = `fromCategory('shoppingCart').foreachStream().when({
    $init: function () { return { count: 0 }; },
    $created: function (s, e) { s.createdBy = e.eventId; emit('audit', 'CartOpened', { cart: e.streamId }); return 'ignored'; },
    ItemAdded: function (s) { s.count += 1; }
  }).outputState().outputTo('carts', 'cart-{0}-result')`;
  const twice = [items[0], { ...rec(4, 'shoppingCart-0', { $type: 'ItemAdded', $id: 'e9', Description: 'x' }) }];
  const result = applied({ 'c.js': source }, twice, { emits: ['c'] });
  assert.deepEqual(result.errors, []);
  assert.deepEqual({ ...result.changes.c.upserts }, { 'shoppingCart-0': { count: 2, createdBy: 'e0' } });
  assert.deepEqual(written(result, 'c'), [
    ['audit', 'CartOpened', { cart: 'shoppingCart-0' }],
    ['cart-shoppingCart-0-result', 'Result', { count: 1, createdBy: 'e0' }],
    ['cart-shoppingCart-0-result', 'Result', { count: 2, createdBy: 'e0' }]]);
});

test('the result chain refuses what is not a function, and outputTo what is not text', () => {
  refused('t.js', "fromAll().when({ $any: function () {} }).transformBy(42)", /transformBy\(\) takes a function of the state, not a number/);
  refused('t.js', "fromAll().when({ $any: function () {} }).outputTo(7)", /outputTo\(\) takes a result stream/);
});

test('a bi-state handler answers a pair: anything else fails the event, and a skipped event leaves both states as they were', () => {
  const source = `fromAll().foreachStream().when({ $initShared: function () { return { n: 0 }; },
    A: function (s) { s[1].n += 1; s[0].n = (s[0].n || 0) + 1; }, B: function (s) { s[1].n += 100; return { no: 'pair' }; } })`;
  const result = applied({ 'b.js': source }, [rec(1, 'x-1', { $type: 'A', $id: 'a' }), rec(2, 'x-2', { $type: 'B', $id: 'b' }),
    rec(3, 'x-1', { $type: 'A', $id: 'c' })], { onError: { b: 'skip' } });
  assert.equal(result.errors.length, 1);
  assert.match(result.errors[0].message, /a bi-state handler answers \[partition state, shared state\]/);
  assert.deepEqual(JSON.parse(JSON.stringify(result.changes.b.upserts)), { b: { shared: { n: 2 }, partitions: { 'x-1': { n: 2 } } } });
});

// Review 7 (a blind attack on results, shared state and $created): each break, kept.
test('review 7: results are values as JSON has them; a result or body that is not an object as JSON is refused, never stored', () => {
  const chain = (transform) => applied({ 'r.js': XBOX + `.transformBy(function (s) { return ${transform}; })` }, items.slice(0, 1), { emits: ['r'] });
  assert.deepEqual(written(chain('new Date(0)'), 'r').map((e) => e[2]), [{ value: '1970-01-01T00:00:00.000Z' }]);
  assert.deepEqual(written(chain('new Number(3)'), 'r').map((e) => e[2]), [{ value: 3 }]);
  assert.deepEqual(written(chain("{ n: NaN }"), 'r').map((e) => e[2]), [{ n: null }]);
  assert.match(chain("{ $type: 'Evil', n: 1 }").errors[0].message, /the result has a \$type or \$id key/);
  const body = applied({ 'e.js': "fromAll().when({ A: function () { emit('s', 'T', new Date(0)); } })" },
    [rec(1, 'x-1', { $type: 'A', $id: 'a' })], { emits: ['e'] });
  assert.match(body.errors[0].message, /the body must be an object as JSON, not a string/);
});

test('review 7: outputTo alone writes results; a transform that changes the state changes it nowhere', () => {
  const source = XBOX + ".transformBy(function (s) { s.count += 100; return s; }).outputTo('r9')";
  const allowed = applied({ 'o.js': source }, items.slice(0, 1), { emits: ['o'] });
  assert.deepEqual(written(allowed, 'o'), [['r9', 'Result', { count: 101 }]]);
  const elsewhere = applied({ 'o.js': source }, items.slice(0, 1));
  assert.deepEqual({ ...allowed.changes.o.upserts }, { o: { count: 1 } });
  assert.deepEqual({ ...elsewhere.changes.o.upserts }, { o: { count: 1 } });
  refused('n.js', "options({ resultStreamName: '$res' }); " + XBOX + '.outputState()', /result stream "\$res" starts with \$/);
});

test("review 7: a bi-state answer keeps both states values: a pair with undefined or null fails the event", () => {
  const result = applied({ 'b.js': "fromAll().when({ $initShared: function () { return { t: 0 }; }, A: function () { return [undefined, undefined]; } })" },
    [rec(1, 'x-1', { $type: 'A', $id: 'a' })]);
  assert.match(result.errors[0].message, /each a value/);
});
