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

// Freeze the intrinsics — every built-in object and prototype reachable from
// the global object, and those reachable only through syntax — so that
// projection code cannot pollute a prototype that other projections, or its
// own later calls, would then see. The few prototype properties that plain
// objects commonly get own properties of the same name ({constructor: ...},
// state.toString = ..., err.message = ...) become accessors first: a plain
// freeze would make such assignments fail (the "override mistake").
(function () {
  var getOwnPropertyNames = Object.getOwnPropertyNames;
  var getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
  var defineProperty = Object.defineProperty;
  var getPrototypeOf = Object.getPrototypeOf;
  var freeze = Object.freeze;
  var hasOwn = Object.prototype.hasOwnProperty;
  var seen = new Set();

  function overridable(object, key) {
    var descriptor = getOwnPropertyDescriptor(object, key);
    if (!descriptor || !('value' in descriptor) || !descriptor.configurable) return;
    var value = descriptor.value;
    defineProperty(object, key, {
      get: function () { return value; },
      set: function (next) {
        if (this === object) throw new TypeError('Cannot assign to read only property ' + key + ' of a built-in');
        if (hasOwn.call(this, key)) this[key] = next;
        else defineProperty(this, key, { value: next, writable: true, enumerable: true, configurable: true });
      },
      enumerable: descriptor.enumerable,
      configurable: false
    });
  }

  function harden(value) {
    if (value === null || (typeof value !== 'object' && typeof value !== 'function') || seen.has(value)) return;
    seen.add(value);
    freeze(value);
    var keys = getOwnPropertyNames(value).concat(Object.getOwnPropertySymbols(value));
    for (var i = 0; i < keys.length; i++) {
      var descriptor = getOwnPropertyDescriptor(value, keys[i]);
      if ('value' in descriptor) harden(descriptor.value);
      else { harden(descriptor.get); harden(descriptor.set); }
    }
    harden(getPrototypeOf(value));
  }

  ['constructor', 'toString', 'toLocaleString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf',
    'propertyIsEnumerable'].forEach(function (key) { overridable(Object.prototype, key); });
  [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError, AggregateError]
    .forEach(function (E) { ['name', 'message', 'toString', 'constructor'].forEach(function (key) { overridable(E.prototype, key); }); });

  getOwnPropertyNames(globalThis).forEach(function (name) {
    var descriptor = getOwnPropertyDescriptor(globalThis, name);
    if (name === 'globalThis' || name === 'plv8' || name.slice(0, 2) === '__' || !descriptor || !('value' in descriptor)) return;
    harden(descriptor.value);
  });
  [function* () {}, async function () {}, async function* () {}, (function* () {})(),
    [][Symbol.iterator](), new Map()[Symbol.iterator](), new Set()[Symbol.iterator](), ''[Symbol.iterator](),
    /x/[Symbol.matchAll]('x')].forEach(harden);
})();
