// A multi-stream view: one document per town, fed by every quest that
// reaches it.
projections
  .projectView('Visitors')
  .identifiedBy(function (evt) { return evt.location; })
  .by({
    $init: function () { return { visits: 0, quests: [] }; },
    TownReached: function (state, evt, meta) {
      state.visits += 1;
      if (state.quests.indexOf(meta.streamId) < 0) state.quests.push(meta.streamId);
    }
  })
  .async();
