// KurrentDB's shared state ($initShared): each handler gets [the cart's state, the shared state]. jsproj
// keeps both in one document, {"shared", "partitions"}; a null answer resets the cart, the shared state stays.
fromCategory('cart')
.foreachStream()
.when({
  $init: function () { return { items: 0 }; },
  $initShared: function () { return { items: 0, carts: 0 }; },
  $created: function (state) { state[1].carts += 1; },
  ItemAdded: function (state, event) {
    state[0].items += 1;
    state[1].items += 1;
    state[1].last = event.streamId;
  },
  CartEmptied: function () { return null; }
});
