// Every kind of projection sees the upcast event: routed by its type (an
// aggregate, in SQL too, by the stored names), keyed by its fields (a view),
// and transformed (an event projection).
projections.aggregate('Leaders').by({
  $init: function () { return { leaders: [] }; },
  QuestStarted: function (state, evt) { state.leaders.push(evt.party[0].name); }
});

projections.projectView('QuestsByTown')
  .identifiedBy(function (evt) { return evt.start.town; })
  .by({
    $init: function () { return { quests: 0 }; },
    QuestStarted: function (state, evt, meta) { state.quests += 1; state.last = meta.streamId; }
  });

projections.projectEvent('QuestStarted').named('Starts').by(function (evt) {
  return { leader: evt.party[0].name, town: evt.start.town, at: evt.start.at, shape: evt.$version };
});
