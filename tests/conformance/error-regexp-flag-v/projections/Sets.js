// The flag v of regular expressions: V8 11 and 14 have it, V8 10 and QuickJS
// refuse the file. It is not part of jsproj's JavaScript: the file is
// refused in every host, with the same message.
var LETTERS = /[\p{L}--[a-z]]/v;
projections.aggregate('Sets').by({ Go: function (state, evt) { state.ok = LETTERS.test(evt.text); } });
