// A number is a state too, as in KurrentDB (stored by the value rule).
fromAll()
.when({
  $init: function () { return 0; },
  $any: function (state) { return state + 1; }
});
