// A document's JSON text is at most 16 MiB characters (MongoDB's document
// limit), in every host: a larger one is refused before anything is stored.
projections.aggregate('Large').by({
  Fill: function (state, evt) { state.blob = 'x'.repeat(evt.size); }
});
