// Tries every object all files share to leave something for another
// projection: the files' Math and Date, projections.DELETE, and RegExp's
// legacy statics (found by an adversarial review).
projections.aggregate('Writer').by({
  Go: function (state, evt) {
    var tries = {
      mathRandom: function () { Math.random.leak = evt.secret; },
      dateNow: function () { Date.now = function () { return 0; }; },
      dateStatic: function () { Date.shared = evt.secret; },
      dateParse: function () { Date.parse.leak = evt.secret; },
      deleteToString: function () { projections.DELETE.toString.leak = evt.secret; },
      regexp: function () { /secret=(\w+)/.exec('secret=' + evt.secret); }
    };
    state.tried = Object.keys(tries).filter(function (name) {
      try { tries[name](); return true; } catch (e) { return false; }
    }).length;
  }
});
