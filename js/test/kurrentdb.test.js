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
  refused('O.js', "options({ BISTATE: true }); fromAll().when({});", /biState \(shared state\) is not supported/);
  refused('O.js', "options({ $includeLinks: true }); fromAll().when({});", /jsproj stores no link events/);
  refused('O.js', "options({ reorderEvents: true }); fromStream('a').when({});", /reorderEvents needs fromStreams\(\) of more than one stream/);
  loadFile('O.js', "options({ reorderEvents: true, processingLag: 100 }); fromStreams('a', 'b').when({});");
});

test('the chain offers only what KurrentDB offers after each step', () => {
  refused('S.js', "fromStream('a').foreachStream().when({});", /TypeError: .*foreachStream is not a function/);
  refused('C.js', "fromCategories('a', 'b').foreachStream().when({});", /foreachStream is not a function/);
  refused('D.js', "fromAll().when({ $deleted: function () {} });", /Deleted stream notifications are only supported with foreachStream\(\)/);
  refused('I.js', "fromAll().when({ $initShared: function () { return {}; } });", /shared state \(\$initShared, biState\) are not supported by jsproj yet/);
  refused('U.js', "fromAll().when({ $unknown: function () {} });", /unknown handler \$unknown/);
  refused('F.js', "fromStream(42).when({});", /fromStream\(\) takes stream ids \(text\), not a number/);
});

test('emit and the other output functions fail the handler that calls them, by name', () => {
  const projector = loadFile('E.js', "fromAll().when({ Go: function (s, e) { emit('out', 'Done', {}); } });");
  const result = jsprojModule.engine.apply(projector,
    [{ position: 1, streamId: 's', streamType: 'S', version: 1, timestamp: '2026-01-01T00:00:00.000Z', metadata: null,
      event: { $type: 'Go', $id: 'a' } }], { E: { E: null } });
  assert.equal(result.errors.length, 1);
  assert.match(result.errors[0].message, /emit\(\) is not supported by jsproj yet/);
});
