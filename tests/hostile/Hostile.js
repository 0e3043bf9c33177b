// The hostile corpus (tests/conformance/test_hostile_corpus.py): one projection whose
// handlers each try to crash the host, run past its limits, escape its
// error reporting or reach what is not its own. Each event type is one
// attack; `expect` in the test says how it must end in every host: an
// error naming this projection and the event, or a view that is the same
// in every host. None may crash PostgreSQL or a host process it shares.
function spin() { for (;;) { /* until the time limit */ } }

var attacks = {
  // -- past the limits ------------------------------------------------------------------------
  Loop: spin,
  HugeFill: function () { return new Array(Math.pow(2, 28)).fill(0).length; },             // PLV8 segfaulted
  HugeSplit: function () { return 'x'.repeat(Math.pow(2, 27) + 10).split('').length; },     // V8 aborts its process
  Hoard: function () { var hoard = []; for (;;) hoard.push(new Array(100000).fill(1)); },
  HoardCaught: function () {                                                                // PL/JS segfaulted
    var hoard = [];
    for (var i = 0; i < 1e6; i++) { try { hoard.push(new Array(1000000).fill(i)); } catch (e) { hoard.push(e); } }
  },
  BigSort: function () {                                                                    // ran 2.5-5x past the limit
    var a = []; for (var i = 0; i < 3e6; i++) a.push((i * 7919) % 3e6);
    for (;;) a.sort(function (x, y) { return x - y; });
  },
  DefaultSort: function () { var a = []; for (var i = 0; i < 3e6; i++) a.push(i * 7919 % 1000); for (;;) a.sort(); },
  SparseIndexOf: function () { var a = []; a.length = 4294967295; return a.indexOf(1); },   // a built-in over 2**32 holes
  SparseReverse: function () { var a = [1, 2]; a.length = 4294967295; a.reverse(); return [a.length, a[4294967294], a[4294967293], 0 in a]; },
  SparseIncludes: function () { var a = []; a.length = 4294967295; return a.includes(1); },
  // a built-in over an array-like of 2**53-1: V8 10 (PLV8) ran it for ever, past every limit and cancel
  CopyWithinLike: function () { return Array.prototype.copyWithin.call({ length: Math.pow(2, 53) - 1 }, 0, 1).length; },
  ForEachLike: function () { Array.prototype.forEach.call({ length: 4e9 }, spin); },
  ConcatSpread: function () { var o = { length: 4e9 }; o[Symbol.isConcatSpreadable] = true; return [].concat(o).length; },
  ApplyLike: function () { return Math.max.apply(null, { length: 4e9 }); },
  SortLike: function () { return Array.prototype.sort.call({ length: 4e9, 0: 2, 1: 1 }).length; },
  Backtrack: function () { return /^(a+)+$/.test(new Array(40).join('a') + 'b'); },
  Recurse: function () { function again() { return again() + 1; } return again(); },
  BigIntPower: function () { return String(2n ** (2n ** 40n)).length; },
  StringBomb: function () { var s = 'x'; for (;;) s = s + s; },
  GetterLoop: function (state) { Object.defineProperty(state, 'late', { enumerable: true, get: spin }); },
  ToJSONRecurse: function (state) { state.bad = { toJSON: function () { return { again: this }; } }; },
  // -- thrown values that must still name this projection and event ---------------------------
  ThrowProxy: function () { throw new Proxy({}, { get: function () { throw 1; } }); },
  ThrowRevoked: function () { var r = Proxy.revocable({}, {}); r.revoke(); throw r.proxy; },
  ThrowSymbol: function () { throw Symbol('thrown'); },
  ThrowFrozen: function () { throw Object.freeze({ message: { toString: function () { throw 2; } } }); },
  ThrowGetterName: function () { var e = new Error('x'); Object.defineProperty(e, 'name', { get: function () { throw 3; } }); throw e; },
  ThrowCyclic: function () { var o = {}; o.self = o; throw o; },
  // -- what is not its own ---------------------------------------------------------------------
  ReachHost: function (state) {
    var self = (function () { return this; })();
    state.sloppyThis = typeof self;
    state.entries = [typeof __jsprojCall, typeof __jsprojEngines, typeof pge_engine_run, typeof plv8, typeof pljs,
      typeof jsproj, typeof process, typeof require('projections').store];
    state.globals = Object.getOwnPropertyNames(globalThis).filter(function (n) { return /^(__|pge|plv8|pljs)/.test(n); });
  },
  Reenter: function () { return __jsprojCall('route', '{"events": []}'); },
  Pollute: function (state) {
    var refused = 0, tries = [
      function () { Array.prototype.evil = 1; }, function () { Object.prototype.toString = spin; },
      function () { JSON.parse = spin; }, function () { Error.prepareStackTrace = function () { return 'x'; }; },
      function () { Math.random.shared = 1; }, function () { globalThis.shared = 1; },
      function () { Symbol.prototype.evil = 1; }, function () { RegExp.prototype.exec = spin; }
    ];
    tries.forEach(function (t) { try { t(); } catch (e) { refused += e instanceof TypeError ? 1 : 0; } });
    state.refused = refused + '/' + tries.length;
  },
  TypedArrays: function () { return new Uint8Array(1e8).length; },
  NoCodeFromText: function () { return Function('return this')(); },
  // -- the same answer in every host -----------------------------------------------------------
  Unicode: function (state) {                                                              // PL/JS crashed
    state.nfkc = '\u1E9B\u0323'.normalize('NFKC');
    state.nfd = '\u00C5\u0301\u1E0B'.normalize('NFD').length;
    state.order = ['b', 'B', '\u00e9', 'e', 'E', 'a', 'z', '\u00c9'].sort(function (a, b) { return a.localeCompare(b); });
  },
  Inconsistent: function (state) {
    var a = []; for (var i = 0; i < 200; i++) a.push((i * 37) % 101);
    state.order = a.sort(function (x, y) { return (x * 7 + y * 3) % 5 - 2; }).join(',');
  },
  Missing: function (state) {
    state.missing = [typeof [].toSorted, typeof Object.groupBy, typeof ''.isWellFormed, typeof new Set().union,
      typeof Intl, typeof Promise, typeof WeakRef, typeof ArrayBuffer, typeof RegExp.$1, typeof Error.captureStackTrace];
  }
};

var handlers = {};
Object.keys(attacks).forEach(function (name) {
  handlers[name] = function (state, evt) {
    var result = attacks[name](state, evt);
    if (result !== undefined) state.result = result;
  };
});
projections.aggregate('Hostile').by(handlers);
