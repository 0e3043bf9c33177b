// An attacker: tries every path to the registry, to another projection, its
// handlers or documents, to reset() and to defining projections, while the
// file loads and from its own handlers. Nothing is reachable, so the victim's
// views are exactly what they are without the attacker.
var dsl = require('../lib/projections');
var reached = [];

function probe(what, get) {
  try {
    var value = get();
    if (value !== undefined && value !== null && value !== false) reached.push(what);
  } catch (e) { /* refused */ }
}

function attack(when, registration) {
  ['projections', 'store', 'reset', 'processEvent', 'captureEvent', 'activeProjectionNames', 'targetsFor',
    'createProjector', 'engine', 'file'].forEach(function (name) {
    probe(when + ': dsl.' + name, function () { return dsl[name]; });
    probe(when + ': projections.' + name, function () { return projections[name]; });
  });
  ['handlers', 'store', 'definition', 'applyEvent', 'processEvent', 'createSnapshot', 'identify'].forEach(function (name) {
    probe(when + ': registration.' + name, function () { return registration[name]; });
  });
  probe(when + ': replace the DSL', function () { dsl.aggregate = null; return dsl.aggregate === null; });
  probe(when + ': add to the DSL', function () { dsl.extra = 1; return dsl.extra; });
  probe(when + ': change DELETE', function () { dsl.DELETE.marker = 1; return dsl.DELETE.marker; });
  probe(when + ': reach the projector through the DSL', function () {
    return dsl.aggregate.projector || dsl.aggregate.caller || Object.getPrototypeOf(dsl) !== Object.prototype;
  });
}

attack('load', {});
var registration = dsl.aggregate('Attacker').by({
  $init: function () {
    var self = this;
    probe('$init: this', function () { return self !== undefined && self !== globalThis; });
    return { reached: [] };
  },
  Hit: function Hit(state) {
    var self = this;
    probe('handler: this', function () { return self !== undefined && self !== globalThis; });
    probe('handler: caller', function () { return Hit.caller; });
    attack('handler', registration);
    probe('handler: define a projection', function () { return dsl.aggregate('Late').by({ Hit: function () {} }); });
    probe('handler: change a lifecycle', function () { return registration.async(); });
    probe('handler: set a lifecycle', function () { registration.lifecycle = 'async'; return registration.lifecycle === 'async'; });
    state.reached = reached.slice();
    state.name = registration.name;
    state.kind = registration.kind;
  }
});
attack('load, after .by()', registration);
