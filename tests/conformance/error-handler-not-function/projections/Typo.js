projections.projectStream('Quest').named('Typo').by({ $init: function () { return {}; }, TownReached: 'state.n++' });
