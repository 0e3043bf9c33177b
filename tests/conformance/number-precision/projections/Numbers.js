// Numbers inside projections are IEEE-754 doubles in every host: integers
// past 2^53 lose precision, 0.1 + 0.2 is not 0.3, -0 is written as 0 and
// huge values stay finite (1e308) or overflow to Infinity, written as null.
projections.projectStream('Numbers').named('Numbers').by({
  Measured: function (state, evt) {
    state.big = evt.big;                       // 9007199254740993 arrives as ...992
    state.bigPlusOne = evt.big + 1;
    state.maxSafe = Number.MAX_SAFE_INTEGER;
    state.sum = 0.1 + 0.2;
    state.negativeZero = -0;
    state.huge = evt.huge;
    state.overflow = evt.huge * 10;
    state.tiny = evt.tiny;
    state.exp = evt.exp;
    state.integerish = evt.integerish;
  }
});
