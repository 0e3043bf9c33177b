// One document across every quest: the total distance walked.
projections
  .aggregate('Traveled')
  .by({
    $init: function () { return { traveled: 0, days: 0 }; },
    TownReached: function (state, evt) { state.traveled += evt.traveled; },
    EndOfDay: function (state, evt) {
      state.traveled += evt.traveled;
      state.days += 1;
    }
  })
  .async();
