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

function simulate(projector, records, options) {
  var pageSize = (options && options.pageSize) || DEFAULT_PAGE_SIZE;
  for (var start = 0; start < records.length; start += pageSize) {
    jsproj.applyInMemory(projector, records.slice(start, start + pageSize));
  }
  return snapshot(projector);
}

jsproj.simulate = simulate;
