projections.projectStream('Target').named('Victim').by({
  $any: function (state) { state.n = (state.n || 0) + 1; }
});
