projections.aggregate('Totals').by({ A: function (s) { s.a = 1; } });
