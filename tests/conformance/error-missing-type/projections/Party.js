projections.projectStream('Quest').named('Party').by({ Started: function (s) { s.started = true; } });
