// The DSL as the global `projections`.
projections.aggregate('ViaGlobal').by({ Ping: function (s) { s.n = (s.n || 0) + 1; } });
