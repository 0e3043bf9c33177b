require("../../lib/pg-events").aggregate('ViaOriginalModule').by({ Ping: function (s) { s.n = (s.n || 0) + 1; } });
module.exports = 'ignored';
