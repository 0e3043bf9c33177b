projections.aggregate('Fine').by({ TownReached: function (s) { s.n = (s.n || 0) + 1; } });
