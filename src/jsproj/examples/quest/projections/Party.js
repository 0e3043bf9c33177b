// One document per Quest stream: where the party is and how far it went.
require('../lib/projections')
  .projectStream('Quest')
  .named('Party')
  .by({
    $init: function () {
      return { active: true, traveled: 0, location: null, members: [] };
    },
    QuestStarted: function (state, evt) {
      state.location = evt.location;
      state.members = evt.members;
    },
    MembersJoined: function (state, evt) {
      evt.members.forEach(function (name) { state.members.push(name); });
    },
    TownReached: function (state, evt) {
      state.location = evt.location;
      state.traveled += evt.traveled;
    },
    EndOfDay: function (state, evt) {
      state.traveled += evt.traveled;
    },
    QuestEnded: function (state, evt) {
      state.active = false;
      state.location = evt.location;
    }
  });
