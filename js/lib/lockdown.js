'use strict';
// What sandboxed hosts (Python's V8 worker, the in-database hosts; not
// Node) do once, after the engine loads and before any projection file:
// take away every global through which projection code could run outside
// the call that invoked it (timers, promises), compile code from text
// (eval, Function), reach memory shared with others, or read the real
// clock; put the deterministic Date and Math.random in place (clock.js);
// freeze every built-in, and then the global object itself. Projection files
// load into that world, so host detection gains nothing: what `jsproj check`
// and `jsproj simulate` accept behaves the same in the database.

var REMOVED = ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', '__timer_manager', 'queueMicrotask',
  'setImmediate', 'clearImmediate', 'Atomics', 'SharedArrayBuffer', 'WebAssembly', 'FinalizationRegistry', 'WeakRef',
  'Promise', 'Temporal', 'AsyncDisposableStack'];

function refuse(what) {
  return function () {
    throw new TypeError(what + ' is not available to projections');
  };
}

function removeGlobal(name) {
  try {
    delete globalThis[name];
  } catch (e) { /* declared with var: cannot be deleted */ }
  if (globalThis[name] !== undefined) globalThis[name] = undefined;
}

// No asynchronous work: a promise job would run after the call that made it,
// outside its time limit. Async functions and import() are refused when a
// file loads (load.js); these close the other ways to a promise.
function removeAsync() {
  if (typeof Promise === 'function') {
    ['then', 'catch', 'finally'].forEach(function (name) { Promise.prototype[name] = refuse('Promise.prototype.' + name); });
  }
  if (typeof Array.fromAsync === 'function') delete Array.fromAsync;
}

// No code from text: eval and every function constructor refuse.
function removeCodeGeneration() {
  var FunctionStandIn = refuse('the Function constructor');
  Object.defineProperty(FunctionStandIn, 'name', { value: 'Function' });
  FunctionStandIn.prototype = Function.prototype;
  var prototypes = [Function.prototype, Object.getPrototypeOf(function* () {})];
  try {
    prototypes.push(Object.getPrototypeOf(new Function('return async function () {}')()));
    prototypes.push(Object.getPrototypeOf(new Function('return async function* () {}')()));
  } catch (e) { /* an engine without async functions */ }
  prototypes.forEach(function (proto) {
    Object.defineProperty(proto, 'constructor', { value: FunctionStandIn, writable: false, enumerable: false, configurable: false });
  });
  globalThis.Function = FunctionStandIn;
  globalThis.eval = refuse('eval');
}

// The clock and randomness of projection code are the event's (clock.js).
function deterministicTime() {
  Object.defineProperty(jsproj.RealDate.prototype, 'constructor', { value: jsproj.ClockDate, writable: false, enumerable: false, configurable: false });
  globalThis.Date = jsproj.ClockDate;
  Math.random = function random() { return jsproj.clockRandom(); };
  // Intl formats "now" when given no date: make that the event's time too.
  if (typeof Intl === 'object' && Intl.DateTimeFormat) {
    var proto = Intl.DateTimeFormat.prototype;
    var format = Object.getOwnPropertyDescriptor(proto, 'format').get;
    var formatToParts = proto.formatToParts;
    Object.defineProperty(proto, 'format', {
      get: function () {
        var bound = format.call(this);
        return function (date) { return bound(date === undefined ? new jsproj.ClockDate() : date); };
      },
      enumerable: false,
      configurable: true
    });
    proto.formatToParts = function (date) { return formatToParts.call(this, date === undefined ? new jsproj.ClockDate() : date); };
  }
}

// Freeze the intrinsics -- every built-in object and prototype reachable
// from the global object, and those reachable only through syntax -- so that
// projection code cannot pollute a prototype that other projections, or its
// own later calls, would then see. The few prototype properties that plain
// objects commonly get own properties of the same name ({constructor: ...},
// state.toString = ..., err.message = ...) become accessors first: a plain
// freeze would make such assignments fail (the "override mistake").
function hardenIntrinsics() {
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
    if (name === 'globalThis' || name === 'plv8' || name === 'pljs' || name.slice(0, 2) === '__' || !descriptor || !('value' in descriptor)) return;
    harden(descriptor.value);
  });
  [function* () {}, (function* () {})(), [][Symbol.iterator](), new Map()[Symbol.iterator](), new Set()[Symbol.iterator](),
    ''[Symbol.iterator](), /x/[Symbol.matchAll]('x')].forEach(harden);
}

// Nothing global can be added or replaced from now on: projections cannot
// leave anything there for one another (their files' own variables stay
// theirs). `writable`: globals that stay writable, for a host that must
// redeclare them (PL/JS declares each function it compiles as a global) and
// puts them back after each call.
function freezeGlobal(writable) {
  Object.getOwnPropertyNames(globalThis).concat(Object.getOwnPropertySymbols(globalThis)).forEach(function (key) {
    var descriptor = Object.getOwnPropertyDescriptor(globalThis, key);
    if (!descriptor.configurable && (!('value' in descriptor) || !descriptor.writable)) return;
    var keep = writable.indexOf(key) >= 0;
    Object.defineProperty(globalThis, key, 'value' in descriptor
      ? { value: descriptor.value, writable: keep && descriptor.writable, configurable: false }
      : { get: descriptor.get, set: descriptor.set, configurable: false });
  });
  Object.preventExtensions(globalThis);
}

// `ops`: the engine operations a host calls through the frozen global
// __jsprojCall(op, text) (one V8 task instead of three for small payloads).
var lockedDown = false;
jsproj.lockdown = function lockdown(ops, writable) {
  if (lockedDown) throw jsproj.fail('EngineError', 'the sandbox is locked down already');
  lockedDown = true;
  removeAsync();
  REMOVED.forEach(removeGlobal);
  removeCodeGeneration();
  deterministicTime();
  if (ops && ops.length) {
    var host = jsproj.host, allowed = ops.slice();
    Object.defineProperty(globalThis, '__jsprojCall', {
      value: Object.freeze(function (op, text) {
        if (allowed.indexOf(op) < 0) throw new Error('unknown operation');
        return host[op](text);
      })
    });
  }
  hardenIntrinsics();
  freezeGlobal(writable || []);
};
