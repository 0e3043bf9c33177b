'use strict';
// jsproj's own versions of the built-ins whose host versions differ, put in
// place of them by the sandboxed hosts at the lockdown (lockdown.js):
// - Array.prototype.sort: one algorithm in every host, a stable merge sort,
//   so a comparator that is not consistent (returns other than a total order)
//   gives the same order everywhere (QuickJS's sort and V8's differ there),
//   and a long sort is JavaScript that the time limit can stop (a built-in
//   sort of millions of elements ran past it);
// - a bound on the length the array built-ins walk (below);
// - String.prototype.normalize and localeCompare (unicode.js).

var MAX_LENGTH = 9007199254740991;
// A length past which an array's own indices are listed rather than every index up to its length tried.
var SPARSE = 65536;
// Runs this short are sorted by insertion before merging.
var RUN = 8;

function toLength(value) {
  var n = Math.trunc(Number(value));
  return n !== n || n <= 0 ? 0 : Math.min(n, MAX_LENGTH);
}

// The indices below `length` an array holds, in order, when listing them is cheaper than trying each.
function ownIndices(object, length) {
  if (length <= SPARSE || !Array.isArray(object) || Object.getPrototypeOf(object) !== Array.prototype) return null;
  var indices = [];
  var keys = Reflect.ownKeys(object);
  for (var i = 0; i < keys.length; i++) {
    var key = keys[i];
    if (typeof key !== 'string') continue;
    var n = Number(key);
    if (n < length && String(n) === key && n % 1 === 0 && n >= 0) indices.push(n);
  }
  return indices.length * 4 < length ? indices : null;
}

// Stable merge sort of `items` by `before(a, b)` (a number: > 0 when b must come first).
function mergeSort(items, order) {
  var n = items.length;
  for (var start = 0; start < n; start += RUN) {
    var end = Math.min(start + RUN, n);
    for (var i = start + 1; i < end; i++) {
      var value = items[i], j = i - 1;
      while (j >= start && order(items[j], value) > 0) { items[j + 1] = items[j]; j--; }
      items[j + 1] = value;
    }
  }
  var from = items, to = new Array(n);
  for (var width = RUN; width < n; width *= 2) {
    for (var left = 0; left < n; left += 2 * width) {
      var middle = Math.min(left + width, n), right = Math.min(left + 2 * width, n), a = left, b = middle, k = left;
      while (a < middle && b < right) to[k++] = order(from[a], from[b]) > 0 ? from[b++] : from[a++];
      while (a < middle) to[k++] = from[a++];
      while (b < right) to[k++] = from[b++];
    }
    var swap = from; from = to; to = swap;
  }
  return from;
}

// The comparator's answer as the specification reads it: a number, NaN as 0.
function comparing(comparefn) {
  return function (a, b) {
    var v = +comparefn(a, b);
    return v !== v ? 0 : v;
  };
}

// Without a comparator: by the values' strings, compared by code units, each value's string made once.
function byStrings(items) {
  var keyed = items.map(function (value) {
    if (typeof value === 'symbol') throw new TypeError('Cannot convert a Symbol value to a string');
    return { key: String(value), value: value };
  });
  return mergeSort(keyed, function (a, b) { return a.key < b.key ? -1 : a.key > b.key ? 1 : 0; })
    .map(function (entry) { return entry.value; });
}

// Array.prototype.sort as the specification has it: the values sorted first,
// then the undefineds, then the holes (the comparator sees neither).
function sort(comparefn) {
  if (comparefn !== undefined && typeof comparefn !== 'function') {
    throw new TypeError('The comparison function must be either a function or undefined');
  }
  if (this === null || this === undefined) throw new TypeError('Array.prototype.sort called on null or undefined');
  var object = Object(this), length = toLength(object.length);
  if (length > MAX_ARRAY_LENGTH) throw refuseLength('sort', length);
  var indices = ownIndices(object, length);
  var items = [], undefineds = 0, count = indices === null ? length : indices.length;
  for (var i = 0; i < count; i++) {
    var index = indices === null ? i : indices[i];
    if (!(index in object)) continue;
    var value = object[index];
    if (value === undefined) undefineds++;
    else items.push(value);
  }
  var sorted = comparefn === undefined ? byStrings(items) : mergeSort(items, comparing(comparefn));
  var at = 0;
  for (; at < sorted.length; at++) object[at] = sorted[at];
  for (var u = 0; u < undefineds; u++) object[at++] = undefined;
  if (indices === null) {
    for (; at < length; at++) if (at in object) delete object[at];
  } else {
    for (var h = 0; h < indices.length; h++) if (indices[h] >= at) delete object[indices[h]];
  }
  return object;
}

// -- A bound on the length the array built-ins take ------------------------------------------
// The array built-ins visit every index up to an object's length, in the engine's own code: V8 10
// (PLV8) cannot interrupt them, so `Array.prototype.copyWithin.call({length: 2 ** 53 - 1}, 0, 1)`
// ran for ever past every limit, allocating nothing. In jsproj's JavaScript the ones that walk a
// length refuse one past MAX_ARRAY_LENGTH (a RangeError, in every host alike): 2**24 elements take
// a built-in at most about half a second in V8 10, and are 128 MB of numbers, half the default
// memory limit.
var MAX_ARRAY_LENGTH = 16777216;
var WALKERS = ['concat', 'copyWithin', 'every', 'fill', 'filter', 'find', 'findIndex', 'findLast', 'findLastIndex', 'flat',
  'flatMap', 'forEach', 'includes', 'indexOf', 'join', 'lastIndexOf', 'map', 'reduce', 'reduceRight', 'reverse', 'shift',
  'slice', 'some', 'splice', 'toString', 'unshift'];

function refuseLength(name, length) {
  return new RangeError('Array.prototype.' + name + ' works on lengths up to ' + MAX_ARRAY_LENGTH +
    " in jsproj's JavaScript, not " + length + ' (docs/javascript.md)');
}

function lengthOf(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function') ? toLength(value.length) : 0;
}

var applyBuiltin = Reflect.apply;

// The built-in `name` behind the bound, as a method (no prototype, as built-ins). A real array's
// length needs no conversion; `concat` also walks each argument that spreads (an array, or an
// object with Symbol.isConcatSpreadable).
function bounded(name, builtin) {
  if (name === 'concat') {
    return { concat() {
      if (this !== null && this !== undefined) spreadLength(name, boundedLength(name, this), arguments);
      return applyBuiltin(builtin, this, arguments);
    } }.concat;
  }
  return { [name]() {
    if (this !== null && this !== undefined) boundedLength(name, this);
    return applyBuiltin(builtin, this, arguments);
  } }[name];
}

function boundedLength(name, self) {
  var length = Array.isArray(self) ? self.length : lengthOf(Object(self));
  if (length > MAX_ARRAY_LENGTH) throw refuseLength(name, length);
  return length;
}

function spreadLength(name, length, items) {
  for (var i = 0; i < items.length; i++) {
    var item = items[i];
    if (Array.isArray(item)) length += item.length;
    else if (item !== null && typeof item === 'object' && item[Symbol.isConcatSpreadable]) length += lengthOf(item);
    if (length > MAX_ARRAY_LENGTH) throw refuseLength(name, length);
  }
}

// Put jsproj's versions in place of the built-ins, as the built-ins are: not enumerable, their names and lengths.
function installBuiltins() {
  var define = function (object, name, method, length) {
    Object.defineProperty(method, 'length', { value: length });
    Object.defineProperty(object, name, { value: method, writable: true, enumerable: false, configurable: true });
  };
  var method = function (name, fn) {   // a method: no prototype, as built-ins
    return { [name]() { return fn.apply(this, arguments); } }[name];
  };
  define(Array.prototype, 'sort', method('sort', sort), 1);
  // (as the engine made them: a lockdown stopped in this step runs it again, lockdown.js)
  var builtins = jsproj.madeOnce('arrayWalkers', function () {
    return WALKERS.map(function (name) { return Array.prototype[name]; });
  });
  WALKERS.forEach(function (name, i) {
    var builtin = builtins[i];
    if (typeof builtin === 'function') define(Array.prototype, name, bounded(name, builtin), builtin.length);
  });
  define(String.prototype, 'normalize', method('normalize', jsproj.unicodeNormalize), 0);
  define(String.prototype, 'localeCompare', method('localeCompare', jsproj.unicodeLocaleCompare), 1);
}

jsproj.sort = sort;
jsproj.installBuiltins = installBuiltins;
