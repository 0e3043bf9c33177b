'use strict';
// The projector of the original spike: the DSL entry points, the registry of
// projections with its routing tables, and the in-memory document store --
// for host code (Node users, the spike's tests, the engine). Projection
// files get only a facade of it (facadeFor).

var fail = jsproj.fail, dict = jsproj.dict, definitionError = jsproj.definitionError;
// The real clock: the engine's own (the global Date is the event's clock in sandboxes).
var RealDate = jsproj.RealDate;

// One projection's documents, by id.
function SimpleStore(type) {
  this.type = type;
  Object.defineProperty(this, 'documents', { value: new Map() });
}
SimpleStore.prototype.find = function (id) { return this.documents.get(String(id)); };
SimpleStore.prototype.update = function (id, data) { this.documents.set(String(id), data); };
SimpleStore.prototype.remove = function (id) { this.documents.delete(String(id)); };
SimpleStore.prototype.ids = function () { return Array.from(this.documents.keys()); };
SimpleStore.prototype.all = function () {
  var all = dict();
  this.documents.forEach(function (data, id) { all[id] = data; });
  return all;
};

// Every projection's documents; aggregates share the store named $aggregates.
function InMemoryStore() {
  var stores = new Map();
  var self = this;
  this.byId = function (type) {
    if (!stores.has(type)) stores.set(type, new SimpleStore(type));
    return stores.get(type);
  };
  this.byType = function () { return self.byId('$aggregates'); };
  this.find = function (type, id) { return self.byId(type).find(id); };
  this.findAggregate = function (name) { return self.byType().find(name); };
  this.storeAggregate = function (name, data) { self.byType().update(name, data); };
}

// The projector: build projections with the DSL, route events to them, and
// (original API) process events against the in-memory store.
function createProjector() {
  var order = [];             // projections in registration order
  var routes = new Map();     // streamType -> Map(eventType -> projections to run)
  var position = 0;
  var versions = new Map();
  var self = {
    store: new InMemoryStore(),
    projections: dict(),
    upcasters: null,          // the upcasters and renames events go through first (upcast.js)
    file: null,               // the file being loaded, for error messages
    DELETE: jsproj.DELETE
  };
  function newUpcasters() {
    self.upcasters = new jsproj.Upcasters(function () { return order; });
  }
  newUpcasters();

  function register(projection) {
    var lower = projection.name.toLowerCase();
    for (var i = 0; i < order.length; i++) {
      var other = order[i];
      if (other.name.toLowerCase() !== lower) continue;
      if (other.name !== projection.name) {
        throw definitionError(self.file, 'projection ' + projection.name + ' clashes with ' + other.name +
          (other.file ? ' (' + other.file + ')' : '') + ': names must differ in more than letter case', projection.name);
      }
      if (self.file !== null) {
        throw definitionError(self.file, 'projection ' + projection.name + ' is defined twice' +
          (other.file ? ' (first in ' + other.file + ')' : ''), projection.name);
      }
      order.splice(i, 1);     // redefined in code (Node, REPL): the new one replaces it
      break;
    }
    order.push(projection);
    self.projections[projection.name] = projection;
    // The spike's calls of one projection (applyEvent, ...) upcast what they are given too.
    Object.defineProperty(projection, 'upcasters', { value: self.upcasters, writable: true, configurable: true });
    routes.clear();
    self.upcasters.plans = null;    // checked again: a handler of a type renamed away is an error
    return projection;
  }

  self.projectStream = function (streamType) {
    return {
      named: function (name) {
        return {
          by: function (definition) {
            return register(new jsproj.StreamProjection(streamType, name, definition, self.file, self.store.byId(name)));
          }
        };
      }
    };
  };

  self.projectEvent = function (eventType) {
    return {
      named: function (name) {
        return {
          by: function (transform) {
            return register(new jsproj.EventProjection(eventType, name, transform, self.file, self.store.byId(name)));
          }
        };
      }
    };
  };

  self.aggregate = function (name) {
    return {
      by: function (definition) {
        return register(new jsproj.AggregateProjection(name, definition, self.file, self.store.byType()));
      }
    };
  };

  // projections.upcast(eventType).from(version).by(fn): events of that type at that schema version
  // become the next version before projections see them (upcast.js).
  self.upcast = function (eventType) {
    return {
      from: function (version) {
        return { by: function (fn) { return self.upcasters.add(eventType, version, fn, self.file); } };
      }
    };
  };

  // projections.renameEvent(oldType).to(newType): events stored as oldType reach projections as newType.
  self.renameEvent = function (oldType) {
    return { to: function (newType) { return self.upcasters.rename(oldType, newType, self.file); } };
  };

  self.projectView = function (name) {
    return {
      identifiedBy: function (identify) {
        return {
          by: function (definition) {
            return register(new jsproj.ViewProjection(name, identify, definition, self.file, self.store.byId(name)));
          }
        };
      },
      by: function () {
        throw definitionError(self.file, 'projectView(' + JSON.stringify(name) + ') needs .identifiedBy(function (evt) { ... }) before .by()', name);
      }
    };
  };

  // The projections an event of this type in a stream of this type goes to,
  // in registration order.
  // Cached per stream type, then event type (no key text to build per event).
  self.targetsFor = function (streamType, eventType) {
    var byEvent = routes.get(streamType);
    if (!byEvent) { byEvent = new Map(); routes.set(streamType, byEvent); }
    var targets = byEvent.get(eventType);
    if (!targets) {
      targets = order.filter(function (p) {
        if (p.kind === 'stream') return p.streamType === streamType;
        if (p.kind === 'event') return p.eventType === eventType;
        // (a tombstone, a link -- a $-type -- goes to the others only if they handle it: $any never sees it)
        return p.handlers.byType.has(eventType) || (p.handlers.any !== null && eventType.charAt(0) !== '$');
      });
      byEvent.set(eventType, targets);
    }
    return targets;
  };

  self.activeProjectionNames = function () {
    return order.map(function (p) { return p.name; });
  };

  self.reset = function () {
    order = [];
    routes.clear();
    position = 0;
    versions.clear();
    self.store = new InMemoryStore();
    self.projections = dict();
    newUpcasters();
    self.file = null;
  };

  // Original API: process one event of a stream against the in-memory store.
  self.processEvent = function (streamId, streamType, evt) {
    jsproj.checkEvent(evt);
    var id = String(streamId);
    var version = (versions.get(id) || 0) + 1;
    var record = {
      position: position + 1, streamId: id, streamType: streamType, version: version,
      timestamp: new RealDate().toISOString(), event: evt
    };
    jsproj.applyInMemory(self, [record]);
    position += 1;
    versions.set(id, version);
  };
  self.captureEvent = self.processEvent;

  return self;
}

// A function usable only while `file` loads into `projector`.
function whileLoading(projector, file, what, fn) {
  return function () {
    if (projector.file !== file) {
      throw definitionError(file, what + ' can be used only while the file loads, not from a handler', null);
    }
    return fn.apply(undefined, arguments);
  };
}

// What .by() gives a projection file: chaining of the lifecycle (or setting
// `lifecycle`, checked when the file has loaded), of .index() and .version(), its name and kind.
function registration(projector, file, projection) {
  var chain = {};
  jsproj.LIFECYCLES.forEach(function (lifecycle) {
    chain[lifecycle] = whileLoading(projector, file, '.' + lifecycle + '()', function () {
      projection[lifecycle]();
      return chain;
    });
  });
  chain.index = whileLoading(projector, file, '.index()', function (field) {
    projection.index(field);
    return chain;
  });
  chain.version = whileLoading(projector, file, '.version()', function (number) {
    projection.version(number);
    return chain;
  });
  Object.defineProperty(chain, 'lifecycle', {
    get: function () { return projection.lifecycle; },
    set: whileLoading(projector, file, 'setting lifecycle', function (value) { projection.lifecycle = value; }),
    enumerable: true
  });
  chain.name = projection.name;
  chain.kind = projection.kind;
  return Object.freeze(chain);
}

// What a projection file gets from require('...projections') or the global
// `projections`: the DSL, to define its own projections and upcasters while it loads, and
// DELETE. Nothing else of the projector -- not the registry, the other
// projections, their handlers or documents, reset() or processEvent() -- so
// no file can reach another's projections.
function facadeFor(projector, file) {
  function step(what, next) {
    return whileLoading(projector, file, what, next);
  }
  function defined(projection) {
    return registration(projector, file, projection);
  }
  return Object.freeze({
    projectStream: step('projectStream()', function (streamType) {
      return Object.freeze({ named: step('.named()', function (name) {
        return Object.freeze({ by: step('.by()', function (definition) {
          return defined(projector.projectStream(streamType).named(name).by(definition));
        }) });
      }) });
    }),
    projectEvent: step('projectEvent()', function (eventType) {
      return Object.freeze({ named: step('.named()', function (name) {
        return Object.freeze({ by: step('.by()', function (transform) {
          return defined(projector.projectEvent(eventType).named(name).by(transform));
        }) });
      }) });
    }),
    aggregate: step('aggregate()', function (name) {
      return Object.freeze({ by: step('.by()', function (definition) {
        return defined(projector.aggregate(name).by(definition));
      }) });
    }),
    projectView: step('projectView()', function (name) {
      var view = projector.projectView(name);
      return Object.freeze({
        identifiedBy: step('.identifiedBy()', function (identify) {
          var identified = view.identifiedBy(identify);
          return Object.freeze({ by: step('.by()', function (definition) { return defined(identified.by(definition)); }) });
        }),
        by: step('.by()', function (definition) { return view.by(definition); })
      });
    }),
    upcast: step('upcast()', function (eventType) {
      return Object.freeze({ from: step('.from()', function (version) {
        return Object.freeze({ by: step('.by()', function (fn) {
          return projector.upcast(eventType).from(version).by(fn);
        }) });
      }) });
    }),
    renameEvent: step('renameEvent()', function (oldType) {
      return Object.freeze({ to: step('.to()', function (newType) { return projector.renameEvent(oldType).to(newType); }) });
    }),
    DELETE: jsproj.DELETE
  });
}

jsproj.createProjector = createProjector;
jsproj.facadeFor = facadeFor;
jsproj.unknownProjection = function (name) {
  return fail('UnknownProjectionError', 'there is no projection named ' + JSON.stringify(name), { projection: name });
};
