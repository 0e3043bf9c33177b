projections.projectStream('Quest').named('Fragile').by({
  TownReached: function (state, evt) {
    if (evt.location === 'Shadar Logoth') throw new Error('nobody comes back from ' + evt.location);
    state.location = evt.location;
  }
});
