// Needs some memory for a moment, within any limit: it must never fail, nor be blamed, for the hoard.
projections.aggregate('Innocent').by({ Grow: function (state) {
  var scratch = new Array(3 * 1024 * 1024).fill(1.5);                // 24 MB, gone after the event
  state.n = (state.n || 0) + scratch.length / scratch.length;
} });
