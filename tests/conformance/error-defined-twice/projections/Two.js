projections.projectStream('S').named('Totals').by({ A: function (s) { s.a = 2; } });
