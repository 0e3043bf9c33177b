'use strict';
// What one JavaScript context (a realm) holds for every engine evaluated in
// it. Most hosts evaluate one engine per context; PLV8 and PL/JS keep one
// context per role in a backend, which serves every store (schema) of that
// role: each store's engine is evaluated apart (its bundle, its projections,
// its caches) and all of them share this record, made by the first one
// before the lockdown:
// - the real compilers and clock, which the lockdown takes from the global
//   object (later engines are evaluated after it);
// - what is running now (the clock reads the event of the running call; a
//   host asks what ran when a limit stopped a call): one record for the
//   context, cleared by every entry before anything runs, so that no store
//   sees what another store's call left there, even a call stopped halfway;
// - whether a call is running: an entry made while one runs is refused
//   (host.js), so no projection can call an engine, its own or another's.
// Projection code never gets this object.

var realm = jsproj.realm;
if (!realm) {
  realm = {
    Function: Function,
    eval: eval,
    Date: Date,
    current: { file: null, projection: null, upcaster: null, meta: null, random: null },
    busy: false,
    clock: null,        // the deterministic Date and Math every engine of the context uses (clock.js)
    scope: null,        // what a projection file's scope is made of (load.js)
    lockedDown: false
  };
}
jsproj.realm = realm;

// Freeze `value` and everything reachable from it: own properties (values,
// getters and setters, symbols too) and prototypes. What the engine hands to
// every file alike (the clock's Date and Math, projections.DELETE) must hold
// no object another file could write to, a function's `prototype` included.
function harden(value) {
  var seen = realm.hardened || (realm.hardened = new WeakSet());
  var stack = [value];
  while (stack.length) {
    var next = stack.pop();
    if (next === null || (typeof next !== 'object' && typeof next !== 'function') || seen.has(next)) continue;
    seen.add(next);
    Object.freeze(next);
    var keys = Reflect.ownKeys(next);
    for (var i = 0; i < keys.length; i++) {
      var descriptor = Object.getOwnPropertyDescriptor(next, keys[i]);
      if ('value' in descriptor) stack.push(descriptor.value);
      else stack.push(descriptor.get, descriptor.set);
    }
    stack.push(Object.getPrototypeOf(next));
  }
  return value;
}

jsproj.harden = harden;
