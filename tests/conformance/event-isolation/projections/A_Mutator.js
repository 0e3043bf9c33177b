// Each projection and each document gets an event of its own: changing the
// event, or keeping part of it in the state and changing that later, never
// reaches another projection or document -- whatever the batch size.
projections.projectStream('Order').named('Mutator').by({
  Placed: function (state, evt) {
    evt.items.push('added-by-mutator');
    evt.note = 'mutated';
    state.items = evt.items;                 // keeps the event's array...
  },
  Shipped: function (state) {
    state.items.push('shipped');             // ...and changes it later
  }
});
