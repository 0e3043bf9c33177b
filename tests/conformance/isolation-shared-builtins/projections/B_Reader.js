projections.aggregate('Reader').by({
  Go: function (state) {
    // (RegExp's legacy statics are not jsproj's JavaScript: named plainly, the file would be refused at load)
    var statics = typeof RegExp.$1 === 'string' ? RegExp.$1 + RegExp['lastMatch'] + RegExp['input'] : '';
    state.seen = [Math.random.leak, Date.shared, Date.parse.leak, projections.DELETE.toString.leak]
      .filter(function (value) { return value !== undefined; }).concat(statics ? [statics] : []);
    state.now = Date.now();
    state.frozen = [Object.isFrozen(Math.random), Object.isFrozen(Date), Object.isFrozen(projections.DELETE.toString)];
  }
});
