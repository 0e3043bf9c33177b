// options({biState: true}) without $initShared: the shared state starts as {}; a handler may answer a new pair.
options({ biState: true });
fromAll()
.partitionBy(function (e) { return e.body.kind; })
.when({
  $any: function (state, event) { return [{ seen: (state[0].seen || 0) + 1 }, { total: (state[1].total || 0) + 1 }]; }
});
