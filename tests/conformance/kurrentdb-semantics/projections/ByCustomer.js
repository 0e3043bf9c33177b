// partitionBy: text as it is, a number as text, anything else skips the event; '' is the root partition.
// A handler's null resets its partition (the next event starts from $init); a value replaces the state.
fromStreams(['order-1', 'order-2', 'order-x1'])
.partitionBy(function (event) { return event.body.customer; })
.when({
  $init: function () { return { orders: 0 }; },
  Placed: function (state, event) { state.orders += 1; state.last = event.streamId; },
  Reset: function () { return null; },
  Replaced: function (state) { return { orders: state.orders * 100 }; }
});
