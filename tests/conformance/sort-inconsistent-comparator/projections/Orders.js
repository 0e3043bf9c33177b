// Sorting is one algorithm in every host (jsproj's stable merge sort): a
// comparator that is not a consistent order -- here one that is not even
// antisymmetric -- still gives the same order everywhere, as do the default
// order (by strings: numbers, undefined last, holes after) and stability.
function numbers(n) { var a = []; for (var i = 0; i < n; i++) a.push((i * 37 + 11) % 101); return a; }
function inconsistent(x, y) { return (x * 7 + y * 3) % 5 - 2; }
projections.aggregate('Orders').by({
  Sort: function (state) {
    state.small = numbers(7).sort(inconsistent);
    state.medium = numbers(60).sort(inconsistent);
    state.large = numbers(1000).sort(inconsistent).slice(0, 40);
    state.nan = numbers(20).sort(function () { return NaN; });
    state.random = numbers(30).sort(function (x, y) { return Math.random() - 0.5; });
    var mixed = [10, 9, 'b', undefined, 'a', 1, true, null, , 2];
    mixed.sort();
    state.defaultOrder = mixed.map(function (v) { return v === undefined ? 'undefined' : v; });
    state.holes = mixed.length + ':' + (9 in mixed);
    state.stable = [{ k: 1, n: 'a' }, { k: 0, n: 'b' }, { k: 1, n: 'c' }, { k: 0, n: 'd' }]
      .sort(function (x, y) { return x.k - y.k; }).map(function (o) { return o.n; }).join('');
  }
});
