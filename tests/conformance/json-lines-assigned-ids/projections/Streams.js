// Stream ids and event $ids missing from the file are assigned: in
// simulation they are numbered UUIDs (version 8), so results are repeatable.
projections.projectStream('Quest').named('Events').by({
  $any: function (state, evt, meta) {
    state.ids = (state.ids || []).concat([evt.$id]);
    state.version = meta.version;
  }
});
