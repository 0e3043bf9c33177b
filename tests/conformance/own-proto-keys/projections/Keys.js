// Keys named like Object.prototype's own ("__proto__", "constructor",
// "toString") are ordinary data: an event's own "__proto__" key stays an own
// key of the document that keeps it, in every host and at every page size.
projections.aggregate('Kept').by({
  Set: function (state, evt) {
    state.seen = state.kept ? Object.keys(state.kept).join(',') + '/' + typeof state.kept.toString : 'none';
    state.kept = evt.data;
    state.proto = Object.getPrototypeOf(evt.data) === Object.prototype;
  }
});
