// Strict code that writes to the event in identifiedBy: the write throws,
// and the error names the view, not the projections whose totals it tried
// to change.
projections.projectView('Attacker').identifiedBy(function (e) {
  'use strict';
  e.n2 = 1000000;
  return 'only';
}).by({ Paid: function () {} });
projections.aggregate('Total').by({ Paid: function (state, e) { state.n = (state.n || 0) + e.n; } });
