// Every kind of projection reads the same events after the attacker.
projections.aggregate('Total').by({
  Paid: function (state, e) { state.n = (state.n || 0) + e.n + e.nested.n; state.extra = e.extra || null; }
});
projections.projectStream('Account').named('Balance').by({
  Paid: function (state, e) { state.n = (state.n || 0) + e.n; }
});
projections.projectEvent('Paid').named('Receipt').by(function (e) {
  return { $id: 'r' + e.n, n: e.n, type: e.$type };
});
projections.projectView('ByAmount').identifiedBy(function (e) { return 'n' + e.n; }).by({
  Paid: function (state, e) { state.count = (state.count || 0) + 1; }
});
