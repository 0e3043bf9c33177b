// Documents are nested at most 512 levels deep, in every host: deeper ones
// (or ones that hold themselves) are refused before anything is stored.
projections.projectStream('Tree').named('Deep').by({
  Grow: function (state, evt) {
    var node = state;
    for (var i = 0; i < evt.depth; i++) { node.child = {}; node = node.child; }
  }
});
