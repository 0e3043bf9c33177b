// The victim: counts its events and keeps the last stream's name.
projections.projectStream('Target').named('Victim').by({
  $init: function () { return { n: 0 }; },
  Hit: function (state, evt, meta) { state.n += 1; state.last = meta.streamId; }
});
projections.projectView('Seen').identifiedBy(function (evt) { return evt.target; }).by({
  Hit: function (state) { state.hits = (state.hits || 0) + 1; }
});
