// What a projection sees of its JavaScript, in every host: the same names on
// every built-in (docs/javascript.md), so that a file cannot tell which host
// runs it, and what one host has and others have not is in none of them.
var getPrototypeOf = Object.getPrototypeOf;
function keys(object) {
  return Reflect.ownKeys(object).map(function (k) { return typeof k === 'symbol' ? String(k) : k; }).sort();
}
function surface() {
  var seen = [], list = [];
  function visit(path, object) {
    if (object === null || (typeof object !== 'object' && typeof object !== 'function') || seen.indexOf(object) >= 0) return;
    seen.push(object);
    list.push(path + ': ' + keys(object).join(' '));
    var proto = Object.getOwnPropertyDescriptor(object, 'prototype');
    if (typeof object === 'function' && proto && typeof proto.value === 'object') visit(path + '.prototype', proto.value);
  }
  keys(globalThis).forEach(function (name) { if (name !== 'globalThis') visit(name, globalThis[name]); });
  visit('%ArrayIteratorPrototype%', getPrototypeOf([][Symbol.iterator]()));
  visit('%IteratorPrototype%', getPrototypeOf(getPrototypeOf([][Symbol.iterator]())));
  visit('%MapIteratorPrototype%', getPrototypeOf(new Map()[Symbol.iterator]()));
  visit('%StringIteratorPrototype%', getPrototypeOf(''[Symbol.iterator]()));
  visit('%GeneratorPrototype%', getPrototypeOf(function* () {}).prototype);
  visit('unscopables', Array.prototype[Symbol.unscopables]);
  return list;
}
projections.aggregate('Surface').by({
  Look: function (state) {
    state.globals = keys(globalThis);
    state.surface = surface();
    state.frozen = [Object.isFrozen(globalThis), Object.isFrozen(Array.prototype), Object.isFrozen(Math)];
    state.thisInAFunction = typeof (function () { return this; })();
    state.stackTraceLimit = Error.stackTraceLimit;
    // what the blind review told hosts apart by: the built-ins' own order, Function.prototype's accessors
    state.order = [Object, Array.prototype, String.prototype, Math, JSON, Reflect].map(function (o) {
      return Reflect.ownKeys(o).map(String).join(' ');
    });
    var caller = Object.getOwnPropertyDescriptor(Function.prototype, 'caller');
    state.accessors = [caller.get.name, caller.get === caller.set,
      caller.get === Object.getOwnPropertyDescriptor(Function.prototype, 'arguments').get];
    state.dates = ['1970-01-01T00:00:00+01', '1970-01-01t00:00:00z', '2026-03-04T05:06:07.089Z', '2026-03-04']
      .map(function (t) { return Date.parse(t); });
  }
});
