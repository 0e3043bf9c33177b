require('../../lib/projections.js').aggregate('ViaRelativePath').by({ Ping: function (s) { s.n = (s.n || 0) + 1; } });
