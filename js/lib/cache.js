'use strict';
// Documents kept across calls for a host that is their only writer: the
// daemon holding an async projection (or partitions of one) applies page
// after page to the same documents, and reading them back from the database
// for every page would cost more than folding. A call naming projections in
// options.cache routes only the documents not kept, is given only those,
// and keeps what the batch leaves. The host drops a projection's documents
// (cacheDrop) whenever they may differ from the database's: a page that was
// not committed, a lock lost, a retry or a build.

var has = jsproj.has;

// At most this many documents are kept, over every projection; the oldest go first.
var LIMIT = 250000;

function DocumentCache() {
  this.byName = new Map();   // name -> Map(key -> document or null: known not to exist)
  this.size = 0;
}

DocumentCache.prototype.drop = function (names) {
  var self = this;
  (names || Array.from(this.byName.keys())).forEach(function (name) {
    var kept = self.byName.get(name);
    if (kept) { self.size -= kept.size; self.byName.delete(name); }
  });
};

// The keys of a route answer the cache does not hold, for the cached projections.
DocumentCache.prototype.missing = function (keys, names) {
  var out = jsproj.dict(), self = this;
  Object.keys(keys).forEach(function (name) {
    var kept = names.indexOf(name) >= 0 ? self.byName.get(name) : undefined;
    out[name] = kept ? keys[name].filter(function (key) { return !kept.has(key); }) : keys[name];
    if (out[name].length === 0) delete out[name];
  });
  return out;
};

// The documents of a call: those supplied, and the cached ones for the rest.
DocumentCache.prototype.documents = function (keys, names, supplied) {
  var documents = jsproj.dict(), self = this;
  Object.keys(keys).forEach(function (name) {
    var bucket = jsproj.dict(), given = supplied && has(supplied, name) ? supplied[name] : {};
    var kept = names.indexOf(name) >= 0 ? self.byName.get(name) : undefined;
    keys[name].forEach(function (key) {
      bucket[key] = kept && kept.has(key) ? kept.get(key) : (has(given, key) ? given[key] : null);
    });
    documents[name] = bucket;
  });
  return documents;
};

// Keep what a call left: its changes, and the documents it was given and did
// not change -- except for a projection that failed on an event, whose
// handlers may have changed a document in place before they threw.
DocumentCache.prototype.keep = function (keys, names, documents, result) {
  var failed = new Set(result.errors.map(function (e) { return e.projection; }));
  var self = this;
  names.forEach(function (name) {
    if (!has(keys, name)) return;
    var kept = self.byName.get(name);
    if (!kept) { kept = new Map(); self.byName.set(name, kept); }
    var change = has(result.changes, name) ? result.changes[name] : null;
    var deleted = change ? new Set(change.deletes) : null;
    keys[name].forEach(function (key) {
      var state;
      if (change && has(change.upserts, key)) state = change.upserts[key];
      else if (deleted && deleted.has(key)) state = null;
      else if (!failed.has(name)) state = documents[name][key];
      else { self.forget(kept, key); return; }
      self.put(kept, key, state);
    });
  });
  this.trim();
};

DocumentCache.prototype.put = function (kept, key, state) {
  if (kept.has(key)) kept.delete(key); else this.size += 1;
  kept.set(key, state);          // last in insertion order: the newest
};

DocumentCache.prototype.forget = function (kept, key) {
  if (kept.delete(key)) this.size -= 1;
};

DocumentCache.prototype.trim = function () {
  var self = this;
  this.byName.forEach(function (kept) {
    var keys = kept.keys();
    while (self.size > LIMIT && kept.size > 0) self.forget(kept, keys.next().value);
  });
};

jsproj.DocumentCache = DocumentCache;
