// Review 5: every key of the data is an own key of the body, a __proto__ key too (never the body's prototype).
fromAll()
.foreachStream()
.when({
  $any: function (state, event) {
    state.isAdmin = event.body.isAdmin === true;
    state.keys = Object.keys(event.body).sort();   // (sorted: the order of keys is the store's)
    state.plain = Object.getPrototypeOf(event.body) === Object.prototype && typeof event.body.hasOwnProperty === 'function';
  }
});
