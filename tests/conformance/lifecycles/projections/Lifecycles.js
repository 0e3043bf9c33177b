// Lifecycle is declared by chaining after .by(); simulation runs every
// lifecycle, so the views are the same whatever is declared.
projections.projectStream('Quest').named('InlineParty').by({
  TownReached: function (state, evt) { state.at = evt.location; }
}).inline();
projections.projectStream('Quest').named('AsyncParty').by({
  TownReached: function (state, evt) { state.at = evt.location; }
}).async();
projections.projectStream('Quest').named('LiveParty').by({
  TownReached: function (state, evt) { state.at = evt.location; }
}).live();
projections.aggregate('DefaultTotal').by({
  TownReached: function (state) { state.n = (state.n || 0) + 1; }
});
projections.projectView('ChangedMind').identifiedBy(function (evt) { return evt.location; }).by({
  TownReached: function (state) { state.n = (state.n || 0) + 1; }
}).live().async();
