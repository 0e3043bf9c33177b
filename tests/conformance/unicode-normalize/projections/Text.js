// String.prototype.normalize and localeCompare are jsproj's own, the same in
// every host (PL/JS 1.0.5 crashed on both; V8s answer by their ICU's data).
var SAMPLES = ['\u1E9B\u0323', '\u00C5\u0301\u1E0B', '\uFB01', '\u2460', '\uAC00\u11A8', '\u1100\u1161\u11A8',
  'e\u0301cole', 'A\u030A', '\u212B', '\u0041\u0308\u0301', 'x\u0327\u0301\u0300'];
projections.aggregate('Text').by({
  Write: function (state) {
    state.forms = SAMPLES.map(function (s) {
      return ['NFC', 'NFD', 'NFKC', 'NFKD'].map(function (f) { return s.normalize(f); });
    });
    state.byDefault = SAMPLES.map(function (s) { return s.normalize() === s.normalize('NFC'); });
    try { 'x'.normalize('NFX'); } catch (e) { state.badForm = e.name; }
    state.order = ['Zoë', 'zoe', 'Zoe', 'éclair', 'eclair', 'Eclair', 'b', 'B', 'a', '10', '9', '_x', 'x', 'ŝ', 's']
      .sort(function (a, b) { return a.localeCompare(b); });
    state.withLocale = 'a'.localeCompare('B', 'tr', { sensitivity: 'base' });
    state.equal = 'e\u0301'.localeCompare('\u00e9');
  }
});
