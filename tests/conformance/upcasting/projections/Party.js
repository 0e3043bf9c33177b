// One document per quest, written against QuestStarted version 3 only.
projections.projectStream('Quest').named('Party').by({
  $init: function () { return { members: [], towns: [] }; },
  QuestStarted: function (state, evt, meta) {
    state.members = evt.party.map(function (member) { return member.name; });
    state.towns.push(evt.start.town);
    state.shape = evt.$version;
    state.seenAs = meta.eventType;
  },
  TownReached: function (state, evt) { state.towns.push(evt.location); }
});
