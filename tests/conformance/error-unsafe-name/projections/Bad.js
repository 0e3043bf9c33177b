projections.aggregate('users; drop table pge_events').by({ A: function (s) { s.a = 1; } });
