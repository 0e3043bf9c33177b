'use strict';
// What a projection file's scope holds of KurrentDB's DSL (kurrentdb.js):
// fromAll, fromCategory, fromCategories, fromStream, fromStreams,
// fromStreamsMatching and options while it loads, each step of the chain
// offering only what KurrentDB offers after it; emit and linkTo (emits.js),
// and the output functions jsproj does not run, which say so. One KurrentDB projection
// per file (KurrentDB names a projection, not its code: jsproj names it after
// the file); the same file may define projections of jsproj's own DSL too.

var kurrentdb = jsproj.kurrentdb, definitionError = jsproj.definitionError, isPlainObject = jsproj.isPlainObject;
var typeName = jsproj.typeName;

function hasOwnKey(object, key) {
  return Object.prototype.hasOwnProperty.call(object, key);
}

function scopeFor(projector, file) {
  var spec = null, options = {}, refusals = { message: null };

  function loading(what, fn) {
    return function () {
      if (projector.file !== file) throw definitionError(file, what + ' can be used only while the file loads, not from a handler', null);
      return fn.apply(undefined, arguments);
    };
  }
  // The result chain after when(): transformBy, filterBy, outputState, outputTo, as KurrentDB offers them.
  function step(what, filter) {
    return loading(what, function (fn) {
      if (typeof fn !== 'function') throw definitionError(file, spec.name + ': ' + what + ' takes a function of the state, not ' + typeName(fn), spec.name);
      spec.results.steps.push({ fn: fn, filter: filter });
      spec.results.produces = true;
      return shaped;
    });
  }
  var outputTo = loading('outputTo()', function (stream, pattern) {
    if (typeof stream !== 'string' || stream.trim() === '' || (pattern !== undefined && typeof pattern !== 'string')) {
      throw definitionError(file, spec.name + ': outputTo() takes a result stream and a partition result stream pattern ({0}: the partition), both text', spec.name);
    }
    spec.results.stream = stream;
    spec.results.pattern = pattern === undefined ? null : pattern;
    spec.results.produces = true;   // (as KurrentDB's documentation and prelude have it; its Jint runtime needs outputState too)
    return Object.freeze({});
  });
  var shaped = Object.freeze({ transformBy: step('transformBy()', false), filterBy: step('filterBy()', true),
    outputState: loading('outputState()', function () { spec.results.produces = true; return shaped; }), outputTo: outputTo });
  var afterWhen = shaped;
  var when = loading('when()', function (handlers) {
    spec.biState = options.bistate === true || (isPlainObject(handlers) && hasOwnKey(handlers, '$initShared'));
    kurrentdb.checkHandlers(spec, handlers);
    var definition = kurrentdb.definitionOf(spec, handlers), made = spec;
    projector.projectView(spec.name)
      .identifiedBy(function (evt, meta) { return kurrentdb.identify(made, evt, meta); })
      .by(definition);
    spec.defined = true;
    return afterWhen;
  });
  var partitioned = Object.freeze({ when: when });
  function partition(how) {
    return function (by) {
      if (how === 'by' && typeof by !== 'function') {
        throw definitionError(file, spec.name + ': partitionBy() takes a function of the event, not ' + typeName(by), spec.name);
      }
      spec.partition = how === 'stream' ? 'stream' : by;
      return partitioned;
    };
  }
  function selected() {
    var next = { when: when, partitionBy: loading('partitionBy()', partition('by')),
      outputState: loading('outputState()', function () { spec.results.produces = true; return Object.freeze({ when: when }); }) };
    var source = spec.source;
    next.foreachStream = source.all || (source.categories && source.categories.length === 1)
      ? loading('foreachStream()', partition('stream'))
      : loading('foreachStream()', function () {   // KurrentDB's refusal, by name
        throw definitionError(file, spec.name + ': foreachStream projections are not supported on stream based sources ' +
          '(fromStream, fromStreams, fromStreamsMatching, several categories)', spec.name);
      });
    return Object.freeze(next);
  }
  function selector(name) {
    return loading(name + '()', function () {
      if (spec !== null) {
        throw definitionError(file, 'a file holds one KurrentDB projection, named after the file (' + spec.name +
          '): put the other in a file of its own', spec.name);
      }
      spec = { file: file, name: kurrentdb.nameOf(file), source: null, partition: null, defined: false, refusals: refusals,
        options: options, results: { produces: false, steps: [], stream: null, pattern: null } };
      spec.source = kurrentdb.sourceOf(spec, name, arguments);
      return selected();
    });
  }
  var setOptions = loading('options()', function (given) {
    if (!isPlainObject(given)) throw definitionError(file, 'options() takes an object, not ' + typeName(given), null);
    Object.keys(given).forEach(function (key) { options[key.toLowerCase()] = checkOption(file, key, given[key]); });
  });
  var values = { options: setOptions };
  kurrentdb.SELECTORS.forEach(function (name) { values[name] = selector(name); });
  kurrentdb.OUTPUTS.forEach(function (name) { values[name] = kurrentdb.output(name, refusals); });
  return {
    values: kurrentdb.NAMES.map(function (name) { return values[name]; }),
    // When the file has run: a selector needs when(), and options KurrentDB checks at the start.
    finish: function () {
      if (refusals.message) throw definitionError(file, refusals.message, spec && spec.name);   // caught while it loaded
      if (spec !== null && !spec.defined) {
        throw definitionError(file, spec.name + ': a KurrentDB projection needs .when({...}) after its selector', spec.name);
      }
      if (spec) {
        [spec.results.stream, options.resultstreamname, spec.results.pattern].forEach(function (name) {
          if (typeof name === 'string' && name.charAt(0) === '$') {
            throw definitionError(file, spec.name + ': result stream ' + JSON.stringify(name) + ' starts with $: jsproj has no system streams', spec.name);
          }
        });
      }
      if (spec && spec.biState && spec.results.produces) {
        throw definitionError(file, spec.name + ': results of a bi-state projection are not supported by jsproj (its state is ' +
          'one document of the shared state and every partition\'s)', spec.name);
      }
      if (options.reorderevents === true && !(spec && spec.source.streams && spec.source.streams.length > 1)) {
        throw definitionError(file, 'options: reorderEvents needs fromStreams() of more than one stream', spec && spec.name);
      }
    }
  };
}

// One options() key, by KurrentDB's rule (its letter case aside); what jsproj cannot honour is refused by name.
function checkOption(file, key, value) {
  var type = kurrentdb.OPTION_TYPES[key.toLowerCase()];
  if (!type) throw definitionError(file, 'options: Unrecognized option: ' + key, null);
  if (typeof value !== type) throw definitionError(file, 'options: Invalid value for ' + key + ': it must be a ' + type + ', not ' + typeName(value), null);
  if (key.toLowerCase() === '$includelinks' && value) {
    throw definitionError(file, 'options: $includeLinks cannot apply: jsproj gives projections no link events (readers resolve them)', null);
  }
  return value;
}

jsproj.kurrentdbScope = scopeFor;
