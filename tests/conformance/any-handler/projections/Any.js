// $any handles every event that has no handler of its own. On an aggregate
// or view it subscribes to every event type.
projections.projectStream('Quest').named('Activity').by({
  $init: function () { return { events: 0, towns: 0 }; },
  TownReached: function (state) { state.towns += 1; },
  $any: function (state) { state.events += 1; }
});
projections.aggregate('EventTypes').by({
  $any: function (state, evt) { state[evt.$type] = (state[evt.$type] || 0) + 1; }
});
