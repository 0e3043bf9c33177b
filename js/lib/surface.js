'use strict';
// jsproj's JavaScript: the built-ins projection code may use, the same in
// every host (docs/javascript.md). A built-in that is not identical in
// every host jsproj runs in (V8 in mini-racer, Node and PLV8; QuickJS in
// PL/JS) is not part of it: the sandboxed hosts remove it at the lockdown
// (lockdown.js), and loading a file that names one says which (load.js).

// The global names of jsproj's JavaScript (besides what a file gets of its
// own: the DSL, require, module, exports, console, and the clock's Date and Math).
var GLOBALS = ['Object', 'Function', 'Array', 'Number', 'parseFloat', 'parseInt', 'Infinity', 'NaN', 'undefined',
  'Boolean', 'String', 'Symbol', 'Date', 'RegExp', 'Error', 'AggregateError', 'EvalError', 'RangeError',
  'ReferenceError', 'SyntaxError', 'TypeError', 'URIError', 'JSON', 'Math', 'Map', 'BigInt', 'Set', 'WeakMap',
  'WeakSet', 'Proxy', 'Reflect', 'decodeURI', 'decodeURIComponent', 'encodeURI', 'encodeURIComponent', 'escape',
  'unescape', 'eval', 'isFinite', 'isNaN', 'globalThis'];

// The pinned globals that `global` holds, in the order above.
function surfaceGlobals(global) {
  return GLOBALS.filter(function (name) { return Object.prototype.hasOwnProperty.call(global, name); });
}

jsproj.SURFACE_GLOBALS = GLOBALS;
jsproj.surfaceGlobals = surfaceGlobals;
