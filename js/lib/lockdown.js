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

// What is removed although some host has it in the pinned list's place:
// everything not in jsproj's JavaScript goes (surface.js); these are named for
// the global stand-ins below.
var realm = jsproj.realm;

function refuse(what, name) {
  return { [name](value) { throw new TypeError(what + ' is not available to projections'); } }[name];
}

function removeGlobal(name) {
  try {
    delete globalThis[name];
  } catch (e) { /* declared with var: cannot be deleted */ }
  if (globalThis[name] !== undefined) globalThis[name] = undefined;
}

// Every global that is not jsproj's JavaScript (surface.js) goes, but for
// the host's own entry points (`keep`): timers, promises, Atomics and shared
// memory, WebAssembly, weak references, Intl, a language's objects...
function removeGlobals(keep) {
  var pinned = new Set(jsproj.SURFACE_GLOBALS.concat(keep)), removed = once('removed', function () { return []; });
  Object.getOwnPropertyNames(globalThis).forEach(function (name) {
    if (pinned.has(name)) return;
    var descriptor = Object.getOwnPropertyDescriptor(globalThis, name);  // (frozen with the intrinsics below)
    if (descriptor) removed.push.apply(removed, 'value' in descriptor ? [descriptor.value] : [descriptor.get, descriptor.set]);
    removeGlobal(name);
  });
}

// No asynchronous work: a promise job would run after the call that made it,
// outside its time limit. Async functions and import() are refused when a
// file loads (load.js); these close the other ways to a promise.
function removeAsync() {
  if (typeof Promise === 'function') {
    ['then', 'catch', 'finally'].forEach(function (name) { Promise.prototype[name] = refuse('Promise.prototype.' + name, name); });
  }
}

// What a step of the lockdown makes once: `make()` the first time, the same
// value when the step runs again after a stop (see jsproj.lockdown), so that
// what it defined for good is defined again with the same value.
function once(name, make) {
  var made = realm.lockdownMade || (realm.lockdownMade = Object.create(null));
  if (!(name in made)) made[name] = make();
  return made[name];
}
jsproj.madeOnce = once;

// No code from text: eval and every function constructor refuse.
function removeCodeGeneration() {
  var FunctionStandIn = once('Function', function () {
    var stand = refuse('the Function constructor', 'Function');
    Object.defineProperty(stand, 'prototype', { value: Function.prototype });
    return stand;
  });
  var prototypes = [Function.prototype, Object.getPrototypeOf(function* () {})];
  try {  // (the realm's Function: the global may be the stand-in already, in a step run again)
    prototypes.push(Object.getPrototypeOf(new realm.Function('return async function () {}')()));
    prototypes.push(Object.getPrototypeOf(new realm.Function('return async function* () {}')()));
  } catch (e) { /* an engine without async functions */ }
  prototypes.forEach(function (proto) {
    Object.defineProperty(proto, 'constructor', { value: FunctionStandIn, writable: false, enumerable: false, configurable: false });
  });
  globalThis.Function = FunctionStandIn;
  globalThis.eval = refuse('eval', 'eval');
}

// The clock and randomness of projection code are the event's (clock.js).
function deterministicTime() {
  Object.defineProperty(jsproj.RealDate.prototype, 'constructor', { value: jsproj.ClockDate, writable: false, enumerable: false, configurable: false });
  globalThis.Date = jsproj.ClockDate;
  Object.defineProperty(Math, 'random', { value: jsproj.ClockMath.random, writable: true, enumerable: false, configurable: true });
}

// A stand-in for a constructor `real`: the function `stand` takes the
// properties of `real` that `copied` names, its prototype's constructor
// points at it (as Date's at the clock's), and it is the global `name`.
function standIn(name, real, stand, copied) {
  Reflect.ownKeys(real).forEach(function (key) {
    if (copied(key)) Object.defineProperty(stand, key, Object.getOwnPropertyDescriptor(real, key));
  });
  Object.defineProperty(real.prototype, 'constructor', { value: stand, writable: true, enumerable: false, configurable: true });
  globalThis[name] = stand;
}

// Symbol, where its extra properties cannot be deleted (V8 14's Symbol.dispose
// is not configurable): a function that calls the real one, with the pinned
// properties only.
function symbolStandIn(keep) {
  var real = once('Symbol', function () { return Symbol; });
  standIn('Symbol', real, once('SymbolStandIn', function () { return { Symbol(value) { return real(value); } }.Symbol; }), function (key) {
    return keep.indexOf(jsproj.surfaceKeyName(key)) >= 0 && key !== 'name';
  });
}

// RegExp refusing the flag v, which V8 10 and QuickJS do not have (a literal
// with it is refused when the file loads: scan.js): a constructor that calls
// the real one, with its static properties and its prototype.
function regExpWithoutFlagV() {
  var Real = once('RegExp', function () { return RegExp; });
  var RegExpStandIn = once('RegExpStandIn', function () {
    return function RegExpStandIn(pattern, flags) {
      if (flags !== undefined && String(flags).indexOf('v') >= 0) {
        throw new SyntaxError("Invalid flags supplied to RegExp constructor '" + String(flags) + "': the flag v is not part of jsproj's JavaScript");
      }
      return new.target === undefined ? Real.apply(undefined, arguments)
        : Reflect.construct(Real, arguments, new.target === RegExpStandIn ? Real : new.target);
    };
  });
  standIn('RegExp', Real, RegExpStandIn, function (key) { return key !== 'prototype'; });
  Object.defineProperty(RegExpStandIn, 'prototype', { value: Real.prototype, writable: false, enumerable: false, configurable: false });
}

// What a file could otherwise tell one host from another by, made the same:
// the accessors Function.prototype has for `caller` and `arguments` (V8 14
// names its own; the others share one unnamed function), and the order of
// each surface object's properties (each engine adds its built-ins in its
// own order): the ones that cannot move stay as they are, the configurable
// ones after them in jsproj's order (surface.js). A key defined again goes
// last (names and symbols each in an order of their own): the longest start
// of that order the object already has, in that order, stays, and the rest is
// defined again after it. The keys V8 guards come first in jsproj's order
// (`constructor`, @@iterator): they stay where V8 made them, and its fast
// paths on.
function sameEverywhere(objects) {
  var poison = { ['']() { throw new TypeError("'caller' and 'arguments' are not available in strict mode functions"); } }[''];
  ['caller', 'arguments'].forEach(function (name) {
    Object.defineProperty(Function.prototype, name, { get: poison, set: poison, enumerable: false, configurable: true });
  });
  // (the functions it uses are taken first, once: it moves Object.defineProperty itself)
  var taken = reflection(), ownKeys = taken.ownKeys, describe = taken.describe, define = taken.define;
  var remove = taken.remove;
  var moves = function (object, keys) {
    var movable = function (key) { return describe(object, key).configurable; };
    var wanted = keys.filter(function (key) { return !movable(key); })
      .concat(keys.filter(movable).sort(jsproj.surfaceKeyOrder));
    var kept = 0, last = -1;
    while (kept < wanted.length && keys.indexOf(wanted[kept]) > last) last = keys.indexOf(wanted[kept++]);
    return wanted.slice(kept);
  };
  objects.forEach(function (object) {
    var keys = ownKeys(object);
    var names = keys.filter(function (key) { return typeof key === 'string'; });
    var symbols = keys.filter(function (key) { return typeof key === 'symbol'; });
    moves(object, names).concat(moves(object, symbols)).forEach(function (key) {
      var descriptor = describe(object, key);
      realm.lockdownMove = { object: object, key: key, descriptor: descriptor };  // (see finishMove)
      remove(object, key);
      define(object, key, descriptor);
    });
  });
  realm.lockdownMove = null;
}

// What moving properties uses, as the engine made it (a move stopped halfway takes one away from its object).
function reflection() {
  return once('reflection', function () {
    return { ownKeys: Reflect.ownKeys, describe: Object.getOwnPropertyDescriptor, define: Object.defineProperty,
      remove: Reflect.deleteProperty };
  });
}

// A move a stop cut between its delete and its define (Object.defineProperty itself, maybe) is finished before
// anything else of the step runs again: else that property would be lost for good.
function finishMove() {
  var move = realm.lockdownMove, taken = reflection();
  if (move && taken.describe(move.object, move.key) === undefined) taken.define(move.object, move.key, move.descriptor);
  realm.lockdownMove = null;
}

// jsproj's JavaScript (surface.js): each surface object keeps its pinned
// properties and loses the others, gets those a host lacks that jsproj
// gives everywhere (ADDED_SURFACE: Error.stackTraceLimit, which V8 needs to
// capture stacks), and any other pinned property it lacks means this host is
// older than jsproj's JavaScript (an error, naming them).
function pinSurface() {
  finishMove();
  var pinned = jsproj.PINNED_SURFACE, keyName = jsproj.surfaceKeyName, lacking = [], stuck = [];
  var symbol = Object.getOwnPropertyDescriptor(Symbol, 'dispose');
  if (symbol && !symbol.configurable) symbolStandIn(pinned.Symbol);
  jsproj.surfaceObjects(globalThis, jsproj.SURFACE_GLOBALS).forEach(function (object, path) {
    var keep = pinned[path];
    if (!keep) return;
    var own = Reflect.ownKeys(object);
    own.forEach(function (key) {
      if (keep.indexOf(keyName(key)) < 0 && !Reflect.deleteProperty(object, key)) stuck.push(path + '.' + keyName(key));
    });
    var names = own.map(keyName), added = jsproj.ADDED_SURFACE[path] || {};
    keep.forEach(function (name) {
      if (names.indexOf(name) >= 0) return;
      if (Object.prototype.hasOwnProperty.call(added, name)) {  // one value where a host lacks it (ADDED_SURFACE)
        Object.defineProperty(object, name, { value: added[name], writable: true, enumerable: true, configurable: true });
      } else {
        lacking.push(path + '.' + name);
      }
    });
  });
  sameEverywhere(Array.from(jsproj.surfaceObjects(globalThis, jsproj.SURFACE_GLOBALS).values()));
  if (lacking.length || stuck.length) {
    throw jsproj.fail('SandboxError', 'this JavaScript engine cannot give jsproj\'s JavaScript (docs/javascript.md): ' +
      (lacking.length ? 'it lacks ' + lacking.join(', ') : '') + (lacking.length && stuck.length ? '; ' : '') +
      (stuck.length ? 'it cannot remove ' + stuck.join(', ') : ''));
  }
}

// Freeze the intrinsics -- every built-in object and prototype reachable
// from the global object, and those reachable only through syntax -- so that
// projection code cannot pollute a prototype that other projections, or its
// own later calls, would then see. The few prototype properties that plain
// objects commonly get own properties of the same name ({constructor: ...},
// state.toString = ..., err.message = ...) become accessors first: a plain
// freeze would make such assignments fail (the "override mistake").
function hardenIntrinsics(writable) {
  var getOwnPropertyNames = Object.getOwnPropertyNames;
  var getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
  var defineProperty = Object.defineProperty;
  var getPrototypeOf = Object.getPrototypeOf;
  var hasOwn = Object.prototype.hasOwnProperty;

  var kept = once('overridden', function () { return []; });
  function overridable(object, key) {
    var descriptor = getOwnPropertyDescriptor(object, key);
    if (!descriptor || !('value' in descriptor) || !descriptor.configurable) return;
    var value = descriptor.value;
    kept.push(value);  // (frozen below: only the accessor's closure holds it, where no walk finds it)
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

  var harden = jsproj.harden;

  ['constructor', 'toString', 'toLocaleString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf',
    'propertyIsEnumerable'].forEach(function (key) { overridable(Object.prototype, key); });
  [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError, AggregateError]
    .forEach(function (E) { ['name', 'message', 'toString', 'constructor'].forEach(function (key) { overridable(E.prototype, key); }); });

  getOwnPropertyNames(globalThis).forEach(function (name) {
    var descriptor = getOwnPropertyDescriptor(globalThis, name);
    // (a global the host redeclares stays as the host made it: PL/JS's own functions)
    if (name === 'globalThis' || writable.indexOf(name) >= 0 || !descriptor || !('value' in descriptor)) return;
    harden(descriptor.value);
  });
  [function* () {}, (function* () {})(), [][Symbol.iterator](), new Map()[Symbol.iterator](), new Set()[Symbol.iterator](),
    ''[Symbol.iterator](), /x/[Symbol.matchAll]('x')].forEach(harden);
  // Reached only through an error, never from a global: the accessor V8 gives every error's `stack`, one
  // getter and setter for the whole context (another engine has a data property there). Unfrozen, one
  // projection wrote an event on it and another read it, and so did one store for the next in a shared
  // context (an adversarial review: tests/hostile/test_review_4_error_stack_accessor.py).
  var stack = getOwnPropertyDescriptor(new Error('x'), 'stack');
  if (stack && !('value' in stack)) [stack.get, stack.set].forEach(harden);
  // Found by an adversarial review (review 9): the built-ins the accessors above return (one projection wrote
  // on `({}).hasOwnProperty`, another read it, in every host), and the removed globals syntax still reaches
  // (QuickJS's InternalError: the prototype of a stack overflow's error). tests/engine/test_lockdown_stopped.py
  kept.concat(once('removed', function () { return []; })).forEach(harden);
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
  try {
    Object.preventExtensions(globalThis);
  } catch (e) {
    // A node:vm context's global object refuses (Node's interceptors): nothing is lost, as projection
    // code never reaches the global object (a file's globalThis is its scope's: load.js).
  }
}

// `ops`: the engine operations a host calls through the frozen global
// __jsprojCall(op, text) (one V8 task instead of three for small payloads);
// `writable`: globals the host redeclares (kept, see freezeGlobal); `keep`:
// the host's other globals (kept). None of them is in a projection file's
// scope (load.js), and every operation refuses a call while another runs (host.js).
//
// In PLV8 and PL/JS the lockdown runs in a call that a cancel or a
// statement_timeout may stop anywhere, and nothing can catch that: the next
// call takes it up again with the same engine (sql/engines/javascript.sql),
// here from the step that was stopped. Each step may run again after a part
// of it ran: what it defines for good it makes once (`once`), and what it
// freezes it walks whole again (a new record of what is hardened). Projection
// code runs only once every step has.
jsproj.lockdown = function lockdown(ops, writable, keep) {
  if (realm.lockedDown) throw jsproj.fail('EngineError', 'the sandbox is locked down already');
  writable = writable || [];
  var steps = [
    removeAsync,
    function () { removeGlobals(writable.concat(keep || [], ops && ops.length ? ['__jsprojCall'] : [])); },
    removeCodeGeneration,
    deterministicTime,
    jsproj.installBuiltins,
    regExpWithoutFlagV,
    pinSurface,
    function () { if (ops && ops.length) entryPoint(ops); },
    function () { hardenIntrinsics(writable); },
    function () { [jsproj.ClockDate, jsproj.ClockMath, jsproj.DELETE].forEach(jsproj.harden); },
    function () { freezeGlobal(writable); }
  ];
  realm.hardened = new WeakSet();  // (a stopped walk marked objects whose insides it had not frozen yet)
  for (var done = realm.lockdownSteps || 0; done < steps.length; realm.lockdownSteps = ++done) steps[done]();
  realm.lockedDown = true;
};

// The frozen global __jsprojCall(op, text): the operations `ops` of the host.
function entryPoint(ops) {
  var host = jsproj.host, allowed = ops.slice();
  var call = once('__jsprojCall', function () {
    return { __jsprojCall(op, text) {  // a method: no `prototype` object to share
      if (allowed.indexOf(op) < 0) throw new Error('unknown operation');
      return host[op](text);
    } }.__jsprojCall;
  });
  Object.defineProperty(globalThis, '__jsprojCall', { value: call });
}
