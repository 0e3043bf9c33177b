'use strict';
// jsproj's JavaScript: the built-ins projection code may use, the same in
// every host (docs/javascript.md). A built-in that is not identical in
// every host jsproj runs in (V8 14 in mini-racer, V8 11 in Node, V8 10 in
// PLV8, QuickJS in PL/JS) is not part of it: the sandboxed hosts remove it
// at the lockdown (lockdown.js), and loading a file that names one says
// which (scan.js). What this file pins is the intersection of the four
// hosts' built-ins (surface-pinned.js, written by tests/pin_surface.py),
// less what no projection may have anywhere: asynchronous work (Promise,
// Atomics, timers), weak references, memory outside the heap's limit
// (ArrayBuffer and the typed arrays: plpython3u's V8 does not count it),
// WebAssembly, Intl and the locale methods (ICU's data is each host's own;
// localeCompare and normalize are jsproj's: unicode.js), and legacy
// statics that keep the last match of any code that ran (RegExp.$1).

// The global names of jsproj's JavaScript (besides what a file gets of its
// own: the DSL, require, module, exports, console, and the clock's Date and Math).
var GLOBALS = ['Object', 'Function', 'Array', 'Number', 'parseFloat', 'parseInt', 'Infinity', 'NaN', 'undefined',
  'Boolean', 'String', 'Symbol', 'Date', 'RegExp', 'Error', 'AggregateError', 'EvalError', 'RangeError',
  'ReferenceError', 'SyntaxError', 'TypeError', 'URIError', 'JSON', 'Math', 'Map', 'BigInt', 'Set', 'WeakMap',
  'WeakSet', 'Proxy', 'Reflect', 'decodeURI', 'decodeURIComponent', 'encodeURI', 'encodeURIComponent', 'escape',
  'unescape', 'eval', 'isFinite', 'isNaN', 'globalThis'];

var getPrototypeOf = Object.getPrototypeOf;
// The intrinsics only syntax reaches, by their names in the specification.
var SYNTAX = {
  '%IteratorPrototype%': function () { return getPrototypeOf(getPrototypeOf([][Symbol.iterator]())); },
  '%ArrayIteratorPrototype%': function () { return getPrototypeOf([][Symbol.iterator]()); },
  '%MapIteratorPrototype%': function () { return getPrototypeOf(new Map()[Symbol.iterator]()); },
  '%SetIteratorPrototype%': function () { return getPrototypeOf(new Set()[Symbol.iterator]()); },
  '%StringIteratorPrototype%': function () { return getPrototypeOf(''[Symbol.iterator]()); },
  '%RegExpStringIteratorPrototype%': function () { return getPrototypeOf(/x/[Symbol.matchAll]('x')); },
  '%GeneratorFunction.prototype%': function () { return getPrototypeOf(function* () {}); },
  '%GeneratorPrototype%': function () { return getPrototypeOf(function* () {}).prototype; }
};

// The well-known symbols, by the name the specification writes @@name.
var WELL_KNOWN = new Map();
Object.getOwnPropertyNames(Symbol).forEach(function (name) {
  if (typeof Symbol[name] === 'symbol') WELL_KNOWN.set(Symbol[name], '@@' + name);
});

function keyName(key) {
  if (typeof key !== 'symbol') return key;
  return WELL_KNOWN.get(key) || '[' + String(key) + ']';
}

function isObject(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function');
}

// The objects whose own properties make up the surface, by path: each
// global of `names` the object `scope` holds, a constructor's prototype,
// Array.prototype's unscopables, and the syntax-only intrinsics.
function surfaceObjects(scope, names) {
  var found = new Map();
  names.forEach(function (name) {
    if (name === 'globalThis' || !Object.prototype.hasOwnProperty.call(scope, name)) return;
    var value = scope[name];
    if (!isObject(value)) return;
    found.set(name, value);
    var proto = Object.getOwnPropertyDescriptor(value, 'prototype');
    if (typeof value === 'function' && proto && isObject(proto.value)) found.set(name + '.prototype', proto.value);
  });
  if (found.has('Array.prototype')) found.set('Array.prototype[@@unscopables]', Array.prototype[Symbol.unscopables]);
  Object.keys(SYNTAX).forEach(function (name) { found.set(name, SYNTAX[name]()); });
  return found;
}

// {path: [own keys, sorted]} of every surface object: what a host has (before the lockdown:
// tests/pin_surface.py), or what projection code sees (after it: the surfaces must be equal).
function readSurface(scope, names) {
  var surface = {};
  surfaceObjects(scope, names || GLOBALS).forEach(function (object, path) {
    surface[path] = Reflect.ownKeys(object).map(keyName).sort();
  });
  surface.globalThis = (names || GLOBALS).filter(function (name) {
    return Object.prototype.hasOwnProperty.call(scope, name);
  }).sort();
  return surface;
}

// The order of an object's keys in jsproj's JavaScript: `length`, `name`,
// `prototype`, `constructor` and @@iterator first, then the others by name
// (each engine adds its built-ins in an order of its own; symbols come after
// names in every engine). The first three are often not configurable; V8
// guards the next two: moving one, even defining it again as it is, turns
// off V8's fast paths for that kind of object for good (array built-ins ran
// six times slower, for-of three times), so they go first, where V8 makes them
// (lockdown.js moves only what must move).
var FIRST = ['length', 'name', 'prototype', 'constructor', '@@iterator'];
function keyOrder(a, b) {
  var x = keyName(a), y = keyName(b), i = FIRST.indexOf(x), j = FIRST.indexOf(y);
  if (i >= 0 || j >= 0) return (i < 0 ? FIRST.length : i) - (j < 0 ? FIRST.length : j);
  return x < y ? -1 : x > y ? 1 : 0;
}

// The pinned globals that `global` holds, in the order above.
function surfaceGlobals(global) {
  return GLOBALS.filter(function (name) { return Object.prototype.hasOwnProperty.call(global, name); });
}

jsproj.SURFACE_GLOBALS = GLOBALS;
jsproj.surfaceGlobals = surfaceGlobals;
jsproj.surfaceObjects = surfaceObjects;
jsproj.readSurface = readSurface;
jsproj.surfaceKeyName = keyName;
jsproj.surfaceKeyOrder = keyOrder;
