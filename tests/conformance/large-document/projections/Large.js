// The value rule and jsonb's key order on documents large enough (600 nodes
// of padding) to be tracked instead of copied when a batch touches them
// again (js/lib/tracking.js): the same results as the small documents of
// value-rule and key-order, at every page size and in every host.
function large() { return { pad: new Array(600).fill(0) }; }
projections.aggregate('LargeValues').by({
  $init: large,
  Add: function (state, evt) {
    // What the previous event left, as this event sees it.
    state.before = {
      sum: state.sum === undefined ? 'undefined' : state.sum,
      inf: state.inf === undefined ? 'undefined' : state.inf,
      negZeroIsNegative: Object.is(state.negZero, -0),
      when: typeof state.when,
      fn: typeof state.fn,
      hasGone: 'gone' in state,
      holes: state.list ? state.list.length + ':' + state.list.indexOf(null) : 'none',
      map: typeof state.map === 'object' ? Object.keys(state.map).length + (state.map instanceof Map ? ' Map' : ' object') : 'none',
      boxed: typeof state.boxed,
      custom: typeof state.custom,
      nested: state.nested ? state.nested.join(',') : 'none'
    };
    state.sum += evt.n;                                   // undefined + 4 is NaN
    state.inf = 1e308 * 10;
    state.negZero = -0;
    state.when = new Date(Date.UTC(2026, 0, evt.n));
    state.fn = function () {};
    state.gone = undefined;
    state.list = state.list || [];
    state.list[state.list.length + 1] = evt.n;            // leaves a hole
    state.map = new Map([['k', 1]]);
    state.boxed = new Number(evt.n);
    state.custom = { toJSON: function () { return 'custom'; } };
    state.nested = [undefined, function () {}, NaN, [Infinity]];
  }
});
projections.aggregate('LargeKeys').by({
  $init: large,
  Key: function (state, evt) {
    state.seen = state.seen || {};
    state.seen[evt.key] = true;
    state.order = Object.keys(state.seen);
  }
});
