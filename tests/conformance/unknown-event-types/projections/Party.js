// Events without a handler change nothing; a stream projection still makes
// the document ($init) for a stream whose first event it does not handle,
// as the original applyEvent did.
projections.projectStream('Quest').named('Party').by({
  $init: function () { return { towns: 0 }; },
  TownReached: function (state) { state.towns += 1; }
});
projections.aggregate('Towns').by({
  TownReached: function (state) { state.count = (state.count || 0) + 1; }
});
