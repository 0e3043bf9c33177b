// A view whose identifiedBy tries to change the event every other projection
// sees: it gets a frozen copy, so the writes throw (projection files are
// strict; uncaught: error-identifiedby-mutates). Its own handler gets an
// unfrozen copy of its own, as appended.
function refused(write) {
  try { write(); return false; } catch (e) { return e instanceof TypeError; }
}
projections.projectView('Attacker').identifiedBy(function (e) {
  var all = [
    refused(function () { e.n = 1000000; }),
    refused(function () { e.nested.n = 1000000; }),
    refused(function () { e.extra = 'added'; }),
    refused(function () { delete e.$type; })
  ];
  return all.every(Boolean) ? 'only' : 'not-refused';
}).by({
  Paid: function (state, e) {
    state.seen = (state.seen || []).concat([e.n]);
    e.n = -1;                                // its own copy: reaches no one
  }
});
