// a missing comma on line 4
projections.aggregate("Broken").by({
  A: function (s) { s.a = 1; }
  B: function (s) { s.b = 1; }
});
