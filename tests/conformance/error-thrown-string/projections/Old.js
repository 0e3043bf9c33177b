// The original spike threw strings; they are reported the same way.
projections.aggregate('Old').by({ Bad: function () { throw 'plain string'; } });
