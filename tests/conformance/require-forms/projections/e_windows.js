require('..\\lib\\projections').aggregate('ViaWindowsPath').by({ Ping: function (s) { s.n = (s.n || 0) + 1; } });
