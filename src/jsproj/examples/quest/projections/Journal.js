// Computed on demand from a quest's events, never stored: every event, as a line.
projections
  .projectStream('Quest')
  .named('Journal')
  .by({
    $init: function () { return { entries: [] }; },
    $any: function (state, evt, meta) {
      return { entries: state.entries.concat([meta.version + '. ' + evt.$type + (evt.location ? ' at ' + evt.location : '')]) };
    }
  })
  .live();
