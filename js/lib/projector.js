'use strict';
// The projector of the original spike: the DSL entry points, the registry of
// projections with its routing tables, and the in-memory document store.

var fail = jsproj.fail, dict = jsproj.dict, definitionError = jsproj.definitionError;

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
  var routes = new Map();     // "streamType\u0000eventType" -> projections to run
  var position = 0;
  var versions = new Map();
  var self = {
    store: new InMemoryStore(),
    projections: dict(),
    file: null,               // the file being loaded, for error messages
    DELETE: jsproj.DELETE
  };

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
    routes.clear();
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
  self.targetsFor = function (streamType, eventType) {
    var key = streamType + '\u0000' + eventType;
    var targets = routes.get(key);
    if (!targets) {
      targets = order.filter(function (p) {
        if (p.kind === 'stream') return p.streamType === streamType;
        if (p.kind === 'event') return p.eventType === eventType;
        return p.handlers.byType.has(eventType) || p.handlers.any !== null;
      });
      routes.set(key, targets);
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
    self.file = null;
  };

  // Original API: process one event of a stream against the in-memory store.
  self.processEvent = function (streamId, streamType, evt) {
    jsproj.checkEvent(evt);
    var id = String(streamId);
    var version = (versions.get(id) || 0) + 1;
    var record = {
      position: position + 1, streamId: id, streamType: streamType, version: version,
      timestamp: new Date().toISOString(), event: evt
    };
    jsproj.applyInMemory(self, [record]);
    position += 1;
    versions.set(id, version);
  };
  self.captureEvent = self.processEvent;

  return self;
}

jsproj.createProjector = createProjector;
jsproj.unknownProjection = function (name) {
  return fail('UnknownProjectionError', 'there is no projection named ' + JSON.stringify(name), { projection: name });
};
