// An aggregate no event reaches has no document (null).
projections.aggregate('Untouched').by({ NeverHappens: function (state) { state.n = 1; } });
