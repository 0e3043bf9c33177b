// Stream projections see only streams of their stream type, even when the
// event types are the same.
projections.projectStream('Quest').named('QuestNotes').by({
  Noted: function (state, evt) { state.notes = (state.notes || []).concat([evt.text]); }
});
projections.projectStream('Journey').named('JourneyNotes').by({
  Noted: function (state, evt) { state.notes = (state.notes || []).concat([evt.text]); }
});
