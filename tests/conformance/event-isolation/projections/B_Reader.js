projections.projectStream('Order').named('Reader').by({
  Placed: function (state, evt) {
    state.items = evt.items.slice();
    state.note = evt.note || null;
  }
});
projections.projectView('PerItem').identifiedBy(function (evt) { return evt.items; }).by({
  Placed: function (state, evt) {
    evt.items.push('fan-out-' + evt.items.length);
    state.seen = evt.items;
  }
});
