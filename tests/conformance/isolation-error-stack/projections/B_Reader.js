projections.aggregate('Reader').by({
  Go: function (state) {
    var stack = Object.getOwnPropertyDescriptor(new TypeError('y'), 'stack');
    state.seen = [stack && stack.get, stack && stack.set]
      .map(function (accessor) { return typeof accessor === 'function' ? accessor.leak : undefined; })
      .filter(function (value) { return value !== undefined; });
  }
});
