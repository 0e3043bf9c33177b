// One file, both DSLs: jsproj's aggregate and a KurrentDB projection named after the file.
options({ resultStreamName: 'mixed_result', ReorderEvents: false, processingLag: 0, $includeLinks: false });
projections.aggregate('MixedTotal').by({
  Placed: function (state, evt) { state.amount = (state.amount || 0) + evt.amount; }
});
fromStream('order-1')
.when({
  $init: function () { return { count: 0 }; },
  Placed: function (s) { s.count += 1; }
})
.outputState();
