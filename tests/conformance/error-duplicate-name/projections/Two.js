projections.aggregate('totals').by({ A: function (s) { s.a = 2; } });
