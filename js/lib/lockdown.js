'use strict';
// Run by sandboxed hosts (Python's V8 worker, the in-database hosts; not
// Node) after the engine: removes globals through which projection code could
// run outside the call that invoked it, or reach memory shared with others.

['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', '__timer_manager',
  'Atomics', 'SharedArrayBuffer', 'WebAssembly', 'FinalizationRegistry', 'WeakRef'
].forEach(function (name) {
  try {
    delete globalThis[name];
  } catch (e) {
    globalThis[name] = undefined;     // declared with var: cannot be deleted
  }
  if (globalThis[name] !== undefined) globalThis[name] = undefined;
});
