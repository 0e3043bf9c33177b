// No $init: the first state is {}.
projections.projectStream('Quest').named('Counts').by({
  TownReached: function (state, evt) { state.towns = (state.towns || 0) + 1; }
});
projections.aggregate('Seen').by({
  QuestStarted: function (state, evt) { state[evt.location] = true; }
});
