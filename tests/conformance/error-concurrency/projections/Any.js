projections.aggregate('Count').by({ $any: function (s) { s.n = (s.n || 0) + 1; } });
