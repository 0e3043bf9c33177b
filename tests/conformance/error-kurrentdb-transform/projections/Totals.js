// transformBy shapes KurrentDB's result, which jsproj does not store yet: refused by name at load, not ignored.
fromStream('account-1')
.when({
  $init: function () { return { count: 0 }; },
  myEventType: function (state) { state.count += 1; }
})
.transformBy(function (state) { return { Total: state.count }; })
.outputState();
