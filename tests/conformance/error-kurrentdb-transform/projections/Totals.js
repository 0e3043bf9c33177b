// transformBy shapes KurrentDB's result: a function of the state, checked when the file loads, as KurrentDB does.
fromStream('account-1')
.when({
  $init: function () { return { count: 0 }; },
  myEventType: function (state) { state.count += 1; }
})
.transformBy({ Total: 'count' })
.outputState();
