projections.aggregate('Victim').by({ Hit: function (state) { state.n = (state.n || 0) + 1; } });
