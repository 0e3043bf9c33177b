// A handler that leaves work for later (a promise job) would run outside its
// time limit, charged to whatever runs next. Projection code has no Promise
// in any host: the handler fails, and the error names it.
projections.aggregate('Attacker').by({
  Hit: function () {
    Promise.resolve().then(function () { while (true) {} });
  }
});
