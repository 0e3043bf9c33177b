// Keys come back from PostgreSQL's jsonb in its order (shorter UTF-8 first,
// then by bytes), so after each event a document's keys are in that order in
// every host: a handler that lists them sees the same list whether the
// document stayed in memory or went to the database and back. (Array index
// keys such as "9" and "10" come first in every JavaScript engine.)
projections.aggregate('Keys').by({
  Key: function (state, evt) {
    state.seen = state.seen || {};
    state.seen[evt.key] = true;
    state.order = Object.keys(state.seen);
  }
});
