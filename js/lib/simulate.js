'use strict';
// Simulation: run a projector over a whole event log in memory, page by
// page, exactly as a storing host would, and report every view.

var dict = jsproj.dict;
var DEFAULT_PAGE_SIZE = 5000;

// Every projection's documents: {views: {name: {id: doc}}, aggregates: {name: doc or null}}.
function snapshot(projector) {
  var views = dict(), aggregates = dict();
  projector.activeProjectionNames().forEach(function (name) {
    var p = projector.projections[name];
    if (p.kind === 'aggregate') {
      var doc = p.store.find(name);
      aggregates[name] = doc === undefined ? null : doc;
    } else {
      views[name] = p.store.all();
    }
  });
  return { views: views, aggregates: aggregates };
}

// options.owned: the records are the engine's own (made by normalize for this call): upcast in place.
function simulate(projector, records, options) {
  var pageSize = (options && options.pageSize) || DEFAULT_PAGE_SIZE, owned = options && options.owned;
  for (var start = 0; start < records.length; start += pageSize) {
    var page = records.slice(start, start + pageSize);
    jsproj.applyInMemory(projector, owned ? jsproj.ownRecords(page) : page);
  }
  return snapshot(projector);
}

jsproj.simulate = simulate;
