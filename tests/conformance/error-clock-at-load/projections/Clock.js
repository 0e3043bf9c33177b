// Code that runs while a file loads has no clock: what it computed would
// depend on when and where the file was loaded.
var loadedAt = Date.now();
projections.aggregate('Clock').by({ Tick: function (state) { state.loadedAt = loadedAt; } });
