// Unicode everywhere: stream ids, keys, values, astral characters.
projections.projectStream('Gäst').named('Guests').by({
  Named: function (state, evt) {
    state.name = evt.name;
    state.länge = evt.name.length;            // UTF-16 code units, as in every JS host
    state['ключ'] = evt.name.toUpperCase();
  }
});
projections.projectView('ByInitial').identifiedBy(function (evt) { return Array.from(evt.name)[0]; }).by({
  Named: function (state, evt) { state.names = (state.names || []).concat([evt.name]); }
});
