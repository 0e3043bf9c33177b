// Deeply nested event data is kept as it is, and can be walked.
projections.projectStream('Tree').named('Tree').by({
  Grown: function (state, evt) {
    var depth = 0, node = evt.tree;
    while (node && node.child) { node = node.child; depth += 1; }
    state.depth = depth;
    state.leaf = node.leaf;
    state.tree = evt.tree;
  }
});
