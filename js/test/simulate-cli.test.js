'use strict';
// The Node CLI takes jsproj simulate's options (--json, --timeout,
// --memory-limit) and says which option was wrong: a real node process each.

const test = require('node:test');
const assert = require('node:assert/strict');
const childProcess = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const SIMULATE = path.join(__dirname, '..', 'bin', 'simulate.js');

// Each project's folder is removed when the test file ends.
const folders = [];
test.after(() => { for (const folder of folders) fs.rmSync(folder, { recursive: true, force: true }); });

function project(source) {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'jsproj-simulate-'));
  folders.push(folder);
  fs.mkdirSync(path.join(folder, 'projections'));
  fs.writeFileSync(path.join(folder, 'projections', 'P.js'), source);
  fs.writeFileSync(path.join(folder, 'events.json'), JSON.stringify([{ id: 's', type: 'S', data: [{ $type: 'Go' }] }]));
  return folder;
}

function simulate(folder, ...options) {
  const done = childProcess.spawnSync(process.execPath,
    [SIMULATE, path.join(folder, 'projections'), path.join(folder, 'events.json'), ...options], { encoding: 'utf8' });
  return { code: done.status, out: done.stdout.trim() ? JSON.parse(done.stdout) : null, err: done.stderr };
}

test('--json and the limits are accepted and the views are printed', () => {
  const folder = project("projections.aggregate('Count').by({ Go: function (s) { s.n = 1; } });");
  const done = simulate(folder, '--json', '--timeout', '5', '--memory-limit', '128');
  assert.equal(done.code, 0, done.err);
  assert.deepEqual(done.out, { views: {}, aggregates: { Count: { n: 1 } } });
});

test('a looping handler is stopped by --timeout, naming the projection', () => {
  const folder = project("projections.aggregate('Spinner').by({ Go: function () { while (true) {} } });");
  const done = simulate(folder, '--timeout', '0.3');
  assert.equal(done.code, 1);
  assert.equal(done.out.error.kind, 'SandboxTimeoutError');
  assert.equal(done.out.error.message, 'projection Spinner ran past the time limit of 0.3 s');
  assert.match(done.err, /^error: projection Spinner ran past the time limit/);
});

test('a hoarding handler is stopped by --memory-limit, naming the projection', () => {
  const folder = project("projections.aggregate('Hoarder').by({ Go: function () { var a = []; for (;;) a.push(new Array(1e5).fill(a.length)); } });");
  const done = simulate(folder, '--memory-limit', '32');
  assert.equal(done.code, 1);
  assert.deepEqual(done.out.error,
    { kind: 'SandboxMemoryError', message: 'projection Hoarder went past the memory limit of 32 MB', projection: 'Hoarder' });
});

test('an unknown option or a bad value is named, with exit code 2', () => {
  const folder = project("projections.aggregate('Count').by({ Go: function (s) { s.n = 1; } });");
  const unknown = simulate(folder, '--timout', '1');
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /^error: unknown option --timout/);
  for (const [option, value, want] of [['--timeout', '0', 'a number of seconds > 0'], ['--memory-limit', '8', 'a whole number of MB >= 16'],
    ['--page-size', '1.5', 'a whole number > 0']]) {
    const bad = simulate(folder, option, value);
    assert.equal(bad.code, 2);
    assert.equal(bad.err, 'error: ' + option + ' must be ' + want + ', not "' + value + '"\n');
  }
});
