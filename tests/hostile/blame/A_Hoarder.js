// Keeps what it makes in a file-level variable ("keep nothing", docs/sandbox.md): its store's heap
// fills up across calls, and whichever projection allocates when it is full runs out of memory.
var hoard = [];
projections.aggregate('Hoarder').by({ Grow: function (state) {
  hoard.push(new Array(3 * 1024 * 1024).fill(0.5));                  // 24 MB kept, per event
  state.n = (state.n || 0) + 1;
} });
