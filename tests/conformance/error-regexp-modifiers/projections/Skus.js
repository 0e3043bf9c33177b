// V8 14 reads the modifiers (?i:...) of a regular expression and duplicate
// named groups; V8 10 and 11 and QuickJS refuse them. They are not part of
// jsproj's JavaScript (mini-racer's V8 runs with them turned off): the file
// is refused in every host (found by the blind review: the Python host
// accepted it, every other host refused it).
var SKU = /^(?i:sku)-\d+$/;
projections.aggregate('Skus').by({ Go: function (state, evt) { state.matched = SKU.test(evt.code); } });
