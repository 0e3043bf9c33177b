// An async handler would return before its work is done, and the rest would
// run outside its time limit: refused when the file loads, in every host.
projections.aggregate('Attacker').by({
  Hit: async function (state) {
    state.n = 1;
  }
});
