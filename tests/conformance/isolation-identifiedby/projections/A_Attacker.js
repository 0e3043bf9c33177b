// A view whose identifiedBy tries to change the event every other projection
// sees: it gets a frozen copy, so in sloppy code the writes are ignored (in
// strict code they throw: error-identifiedby-mutates). Its own handler gets
// an unfrozen copy of its own, as appended.
projections.projectView('Attacker').identifiedBy(function (e) {
  e.n = 1000000;
  e.nested.n = 1000000;
  e.extra = 'added';
  delete e.$type;
  return 'only';
}).by({
  Paid: function (state, e) {
    state.seen = (state.seen || []).concat([e.n]);
    e.n = -1;                                // its own copy: reaches no one
  }
});
