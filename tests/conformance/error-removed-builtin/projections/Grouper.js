// Object.groupBy exists in V8 14 and QuickJS, not in V8 10 (PLV8) nor 11
// (Node 20): it is not part of jsproj's JavaScript, and loading the file
// says so in every host, before any event.
projections.aggregate('Grouper').by({
  Go: function (state, evt) { state.groups = Object.groupBy(evt.items, function (x) { return x % 2; }); }
});
