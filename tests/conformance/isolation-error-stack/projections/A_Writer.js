// Writes its event on what every error's `stack` is made of: V8 gives all
// errors of a context one accessor (getter and setter) for it, reached only
// through an error (found by an adversarial review: the lockdown now freezes
// it; another engine has a data property there, its own each).
projections.aggregate('Writer').by({
  Go: function (state, evt) {
    var stack = Object.getOwnPropertyDescriptor(new Error('x'), 'stack');
    var tried = 0;
    [stack && stack.get, stack && stack.set].forEach(function (accessor) {
      if (typeof accessor !== 'function') return;
      try { accessor.leak = evt.secret; tried += 1; } catch (e) { /* frozen: refused */ }
    });
    state.written = tried;
  }
});
