'use strict';
// jsproj's own versions of the built-ins whose host versions differ, put in
// place of them by the sandboxed hosts at the lockdown (lockdown.js):
// - Array.prototype.sort: one algorithm in every host, a stable merge sort,
//   so a comparator that is not consistent (returns other than a total order)
//   gives the same order everywhere (QuickJS's sort and V8's differ there),
//   and a long sort is JavaScript that the time limit can stop (a built-in
//   sort of millions of elements ran past it);
// - indexOf, lastIndexOf, includes and reverse on arrays of many holes (below);
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
  var object = Object(this), length = toLength(object.length), indices = ownIndices(object, length);
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

// -- Arrays of many holes: the index built-ins over their own indices --------------------------
// indexOf, lastIndexOf, includes and reverse look at every index up to the length: over an array
// of 2**32-1 holes that is minutes of a built-in no limit stops in V8 10 (PLV8), and seconds or
// nothing in others. On such an array (longer than SPARSE, a quarter or less of it held), these
// visit the indices it holds, with the built-ins' answers; on any other, the built-ins run.

function integerOf(value) {
  var n = Number(value);
  return n !== n ? 0 : Math.trunc(n);
}

function startOf(from, length) {
  var n = integerOf(from);
  return n >= 0 ? n : Math.max(length + n, 0);
}

var sparseVersions = {
  indexOf: function (object, indices, args) {
    var start = startOf(args[1], object.length);
    for (var i = 0; i < indices.length; i++) if (indices[i] >= start && object[indices[i]] === args[0]) return indices[i];
    return -1;
  },
  lastIndexOf: function (object, indices, args) {
    var length = object.length, n = args.length > 1 ? integerOf(args[1]) : length - 1;
    var last = n >= 0 ? Math.min(n, length - 1) : length + n;
    for (var i = indices.length - 1; i >= 0; i--) if (indices[i] <= last && object[indices[i]] === args[0]) return indices[i];
    return -1;
  },
  includes: function (object, indices, args) {
    var start = startOf(args[1], object.length), held = 0, wanted = args[0];
    for (var i = 0; i < indices.length; i++) {
      if (indices[i] < start) continue;
      held++;
      var value = object[indices[i]];
      if (value === wanted || (value !== value && wanted !== wanted)) return true;
    }
    return wanted === undefined && held < object.length - start;   // a hole reads as undefined
  },
  reverse: function (object, indices) {
    var last = object.length - 1, values = indices.map(function (i) { return object[i]; });
    indices.forEach(function (i) { if (!delete object[i]) throw new TypeError('Cannot delete property ' + i); });
    indices.forEach(function (i, n) { object[last - i] = values[n]; });
    return object;
  }
};

function sparseAware(name, builtin) {
  return function () {
    var length = Array.isArray(this) ? this.length : 0;
    var indices = length > SPARSE ? ownIndices(this, length) : null;
    return indices === null ? builtin.apply(this, arguments) : sparseVersions[name](this, indices, arguments);
  };
}

// Put jsproj's versions in place of the built-ins, as the built-ins are: not enumerable, their names and lengths.
function installBuiltins() {
  var define = function (object, name, fn, length) {
    var method = { [name]() { return fn.apply(this, arguments); } }[name];   // a method: no prototype, as built-ins
    Object.defineProperty(method, 'length', { value: length });
    Object.defineProperty(object, name, { value: method, writable: true, enumerable: false, configurable: true });
  };
  define(Array.prototype, 'sort', sort, 1);
  Object.keys(sparseVersions).forEach(function (name) {
    var builtin = Array.prototype[name];
    define(Array.prototype, name, sparseAware(name, builtin), builtin.length);
  });
  define(String.prototype, 'normalize', jsproj.unicodeNormalize, 0);
  define(String.prototype, 'localeCompare', jsproj.unicodeLocaleCompare, 1);
}

jsproj.sort = sort;
jsproj.installBuiltins = installBuiltins;
