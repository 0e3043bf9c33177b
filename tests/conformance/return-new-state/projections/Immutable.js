// Handlers may return a new state instead of mutating it (KurrentDB style);
// states need not be objects.
projections.projectStream('Cart').named('Cart').by({
  $init: function () { return { items: [], total: 0 }; },
  ItemAdded: function (state, evt) {
    return { items: state.items.concat([evt.sku]), total: state.total + evt.price };
  },
  ItemRemoved: function (state, evt) {
    state.items = state.items.filter(function (sku) { return sku !== evt.sku; });
    state.total -= evt.price;     // mutating works too; returning nothing keeps it
  }
});
projections.aggregate('ItemCount').by({
  $init: function () { return 0; },
  ItemAdded: function (count) { return count + 1; },
  ItemRemoved: function (count) { return count - 1; }
});
projections.aggregate('LastSku').by({
  ItemAdded: function (state, evt) { return evt.sku; }
});
