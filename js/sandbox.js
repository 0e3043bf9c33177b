'use strict';
// Projection files in Node as in every sandboxed host: the engine in a
// JavaScript context of its own (node:vm), locked down before any file
// loads (lib/lockdown.js), JSON text in and out (lib/host.js). Projection
// code there has jsproj's JavaScript (lib/surface.js: the same built-ins as
// in the Python host and the database), frozen, and nothing of Node: no
// require, process, Buffer or timers. `jsproj-simulate` and the conformance
// suite run Node this way.
//
// It is isolation, not containment: node:vm is not a security boundary and
// there is no memory limit but the process's own. Run projection code you
// do not trust in the Python host or the database (docs/sandbox.md).

const fs = require('fs');
const path = require('path');
const vm = require('vm');

const LIB = path.join(__dirname, 'lib');
// The operations the context's frozen global __jsprojCall runs (each refuses a call while another runs).
const OPS = ['load', 'route', 'apply', 'normalize', 'simulate'];

function engineFiles() {
  return JSON.parse(fs.readFileSync(path.join(LIB, 'bundle.json'), 'utf8'))
    .map((name) => ({ name, source: fs.readFileSync(path.join(LIB, name), 'utf8') }));
}

// A new context with the engine loaded and locked down; `call(op, text, timeoutMs)` runs an operation
// (under a time limit when one is given: node:vm interrupts the call), `current()` says what ran last.
function createSandbox() {
  const context = vm.createContext({}, { codeGeneration: { strings: true, wasm: false } });
  const jsproj = vm.runInContext('({ realm: null })', context);
  for (const file of engineFiles()) {
    vm.runInContext('(function (jsproj) {' + file.source + '\n})', context, { filename: 'jsproj/lib/' + file.name })(jsproj);
  }
  const host = jsproj.host;
  const locked = JSON.parse(host.lockdown(JSON.stringify({ ops: OPS })));
  if (locked.error) throw new Error('the sandbox could not lock down: ' + locked.error.message);
  return {
    call(op, text, timeoutMs) {
      if (!OPS.includes(op)) throw new Error('unknown operation ' + op);
      if (timeoutMs === undefined) return host[op](text);
      return vm.runInContext('__jsprojCall(' + JSON.stringify(op) + ', ' + JSON.stringify(text) + ')', context,
        { timeout: Math.max(1, Math.round(timeoutMs)) });
    },
    // What was running when a call was stopped ({file, projection, ...}). The stopped call is not ended: every
    // entry refuses from then on (js/lib/host.js), and a sandbox is not used again after a stop.
    current() {
      return JSON.parse(host.current('')).ok;
    }
  };
}

module.exports = { createSandbox };
