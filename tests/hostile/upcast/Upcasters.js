// Hostile upcasters (tests/engine/test_upcasting.py in the Python host, tests/store/test_upcasting.py in
// PLV8): an upcaster is projection code and gets no more than a handler. Each event type is one attack by
// its upcaster; the aggregate Seen keeps what projections were handed.
function spin() { for (;;) { /* until the time limit */ } }
var kept = [];

var attacks = {
  Loop: spin,
  Hoard: function () { var hoard = []; for (;;) hoard.push(new Array(100000).fill(1)); },
  ReachHost: function () {
    var dsl = require('projections');
    return {
      entries: [typeof __jsprojCall, typeof __jsprojEngines, typeof pge_engine_run, typeof plv8, typeof pljs,
        typeof jsproj, typeof process, typeof dsl.store, typeof dsl.upcasters, typeof dsl.projections],
      sloppyThis: typeof (function () { return this; })(),
      globals: Object.getOwnPropertyNames(globalThis).filter(function (n) { return /^(__|pge|plv8|pljs)/.test(n); }),
      define: (function () { try { dsl.upcast('Late').from(1).by(function () {}); return 'defined'; } catch (e) { return 'refused'; } })()
    };
  },
  Reenter: function () { return { answer: __jsprojCall('route', '{"events": []}') }; },
  // Changes the event it is given, and later what it was given and what it returned: none of it reaches the
  // stored log or what a projection was handed.
  Keep: function (evt) {
    kept.forEach(function (k) { k.given.marks.push('changed later'); k.returned.marks.push('changed later'); });
    evt.marks.push('changed in place');
    var out = { marks: evt.marks };
    kept.push({ given: evt, returned: out });
    return out;
  }
};
Object.keys(attacks).forEach(function (type) { projections.upcast(type).from(1).by(attacks[type]); });

projections.aggregate('Seen').by({
  $init: function () { return { keeps: [] }; },
  ReachHost: function (state, evt) { state.reach = { entries: evt.entries, sloppyThis: evt.sloppyThis, globals: evt.globals, define: evt.define }; },
  Keep: function (state, evt) { state.keeps.push(evt.marks); },
  $any: function () { /* every other attack: its upcaster runs for Seen */ }
});
