// Inside a handler, transform or identifiedBy, the clock is the event's
// timestamp and Math.random() is seeded from the event's id and the
// projection's name (restarted for every call): a rebuild reproduces the
// first run bit for bit, in every host.
projections.projectStream('Order').named('Clock').by({
  Placed: function (state, evt, meta) {
    state.now = Date.now();
    state.iso = new Date().toISOString();
    state.sameAsMeta = Date.now() === Date.parse(meta.timestamp);
    state.called = typeof Date();
    state.explicit = new Date(Date.UTC(2020, 1, 29)).toISOString();
    state.isDate = new Date() instanceof Date;
    state.random = [Math.random(), Math.random()];
    state.pi = Math.PI;
  }
});
projections.aggregate('Dice').by({
  Placed: function (state) { state.rolls = (state.rolls || []).concat([Math.floor(Math.random() * 6) + 1]); }
});
projections.projectView('Stamps').identifiedBy(function () { return 'at-' + Date.now(); }).by({
  $any: function (state, evt) { state.count = (state.count || 0) + 1; state.first = Math.random(); }
});
projections.projectEvent('Placed').named('Receipt').by(function (evt) {
  return { $id: 'r-' + new Date().getUTCDate(), random: Math.random() };
});
