'use strict';
// KurrentDB's projection DSL (formerly EventStoreDB's) as a second front end
// of the engine: a file that calls fromAll(), fromCategory(), fromStream()...
// defines one projection, named after the file, run by the same engine in
// every host, with the same isolation, limits, value rule and clock. The
// semantics are those of KurrentDB's running code (Jint, V1), not of its
// legacy prelude (docs/design/kurrentdb-front-end.md); what maps to what is
// in docs/from-kurrentdb.md.
//
// A KurrentDB projection becomes a view: one document per partition (the
// stream with foreachStream(), partitionBy's key) or, unpartitioned, one
// document keyed by the projection's name (KurrentDB's root partition). The
// selector decides which events reach it; handlers get (state, event) with
// KurrentDB's event object; a handler's undefined keeps the mutated state,
// null resets the partition (the next event starts from $init), anything
// else is the new state.

var fail = jsproj.fail, clone = jsproj.clone, typeName = jsproj.typeName, isPlainObject = jsproj.isPlainObject;
var definitionError = jsproj.definitionError, DELETE = jsproj.DELETE;

// The names a file's scope gives (load.js): the selectors, options(), and the
// output functions (emit and linkTo write events; the others say jsproj does not run them).
var SELECTORS = ['fromAll', 'fromCategory', 'fromCategories', 'fromStream', 'fromStreams', 'fromStreamsMatching'];
var OUTPUTS = ['emit', 'linkTo', 'linkStreamTo', 'copyTo'];
var NAMES = SELECTORS.concat(['options'], OUTPUTS);
// options() keys as KurrentDB matches them (letter case aside), with their types.
var OPTION_TYPES = { resultstreamname: 'string', $includelinks: 'boolean', reorderevents: 'boolean',
  processinglag: 'number', bistate: 'boolean' };
var HANDLER_KEYS = ['$init', '$initShared', '$any', '$deleted', '$created'];
var hasOwn = Object.prototype.hasOwnProperty;
var NAME_CHARACTERS = /[-. ]/g;

// KurrentDB's default category rule ($by_category, "first" -): the stream id
// before its first '-', when that is not its first character; none for a
// stream id without one, or of a system stream ($...).
function category(streamId) {
  if (typeof streamId !== 'string' || streamId.charAt(0) === '$') return null;
  var at = streamId.indexOf('-');
  return at > 0 ? streamId.slice(0, at) : null;
}

// The projection's name: its file's, without folders and .js, with - . and
// spaces as _ (KurrentDB names a projection when it is created, not in code).
function nameOf(file) {
  var base = String(file).split('/').pop().replace(/\.js$/, '');
  return base.replace(NAME_CHARACTERS, '_');
}

// KurrentDB's `created`: the round-trip format, seven fractional digits.
function created(timestamp) {
  if (typeof timestamp !== 'string') return null;
  return timestamp.replace(/\.(\d{3})Z$/, '.$10000Z');
}

// The event object a handler gets, from jsproj's event and metadata.
function envelope(evt, meta, partition, spec) {
  var body = {};   // own keys only, __proto__ too: defined, never assigned (an assigned __proto__ sets the prototype)
  Object.keys(evt).forEach(function (key) {
    if (key !== '$type' && key !== '$id') {
      Object.defineProperty(body, key, { value: evt[key], writable: true, enumerable: true, configurable: true });
    }
  });
  var metadata = meta.metadata === null ? null : clone(meta.metadata);
  // The raw texts are made when read (KurrentDB parses lazily the other way): most handlers never read them.
  return Object.freeze({
    isJson: true,
    body: body,
    data: body,
    get bodyRaw() { return JSON.stringify(body); },
    eventType: evt.$type,
    streamId: meta.streamId,
    sequenceNumber: typeof meta.version === 'number' ? meta.version - 1 : null,
    eventId: meta.eventId,
    created: created(meta.timestamp),
    metadata: metadata,
    get metadataRaw() { return metadata === null ? '' : JSON.stringify(metadata); },
    linkMetadata: null,
    linkMetadataRaw: null,
    partition: partition,
    category: spec.source.categories ? category(meta.streamId) : null
  });
}

// An output function (emit, linkTo...): refused when called, and -- should projection code catch that -- once
// more when the KurrentDB code that called it returns (projected), so that no emit is ever silently dropped.
function notYet(what, refusals) {
  return function () {
    var message = what + ' is not supported by jsproj yet (docs/from-kurrentdb.md#what-does-not-map)';
    refusals.message = refusals.message || message;
    throw new TypeError(message);
  };
}

// An output function as a file's scope has it: emit and linkTo write events (emits.js), the others are refused.
// What one refuses is kept to fail the KurrentDB code that called it (projected), should that catch it.
function output(name, refusals) {
  var fn = name === 'emit' || name === 'linkTo' ? jsproj.emits[name] : null;
  if (fn === null) return notYet(name + '()', refusals);
  return function () {
    try {
      return fn.apply(undefined, arguments);
    } catch (e) {
      refusals.message = refusals.message || e.message;
      throw e;
    }
  };
}

// A call of the file's KurrentDB code (a handler, partitionBy, fromStreamsMatching's function); what an output
// function refused in it fails it, caught or not.
function projected(spec, fn, args) {
  spec.refusals.message = null;
  var result = fn.apply(undefined, args);
  if (spec.refusals.message) throw new TypeError(spec.refusals.message);
  return result;
}

// What a handler's answer does to the state: KurrentDB's rule.
function answered(state, result) {
  if (result === undefined) return state;
  if (result === null) return DELETE;
  return result;
}

function biStateDefinition(spec, handlers) {
  var definition = {}, named = 0;
  if (handlers.$init) definition.$init = function () { return projected(spec, handlers.$init, []); };
  var call = biStateOf(spec, handlers, definition);
  Object.keys(handlers).forEach(function (key) {
    if (key.charAt(0) === '$' && key !== '$any') return;
    if (key !== '$any') named += 1;
    var fn = handlers[key];
    definition[key] = call(function (pair, event) { return answered(pair, projected(spec, fn, [pair, event])); });
  });
  if (named === 0 && !definition.$any) definition.$any = call(function (pair, event) { return [event.body, pair[1]]; });
  return definition;
}

// KurrentDB's result of a state: the chain of transformBy and filterBy (a transform's null or undefined, a
// filter's answer that is not true, make it null), run on the state itself, as KurrentDB does.
function resultOf(spec, state) {
  var result = state;
  for (var i = 0; i < spec.results.steps.length; i++) {
    var step = spec.results.steps[i];
    var answer = projected(spec, step.fn, [result]);
    if (step.filter ? answer !== true : answer === undefined || answer === null) return null;
    if (!step.filter) result = answer;
  }
  return result;
}

// KurrentDB's result stream of a partition: outputTo's (or options' resultStreamName) for the root, its
// pattern with {0} as the partition for another; by default projections-<name>-result and
// projections-<name>-<partition>-result (KurrentDB's, without its $).
function resultStream(spec, partition) {
  var results = spec.results;
  if (partition === '') return results.stream || spec.options.resultstreamname || 'projections-' + spec.name + '-result';
  return results.pattern ? results.pattern.split('{0}').join(partition) : 'projections-' + spec.name + '-' + partition + '-result';
}

// A handler call of a projection that produces results (outputState, transformBy, filterBy): where it may
// write events (emits.js), its result as a Result event -- ResultRemoved for null -- when the state changed.
function withResult(spec, state, partition, handle) {
  if (!spec.results.produces || !jsproj.emits.writing()) return handle();
  var before = state === null ? null : JSON.stringify(state);
  var next = handle();
  var after = next === DELETE ? null : JSON.stringify(next);
  if (after !== before) {   // (the chain gets a copy: a transform changes the state nowhere, results written or not)
    var result = next === DELETE ? null : resultOf(spec, JSON.parse(after));
    var text = result === null ? undefined : JSON.stringify(result);   // the value rule: a Date's text, NaN as null...
    result = text === undefined ? null : JSON.parse(text);
    var data = result === null ? {} : isPlainObject(result) ? result : { value: result };
    jsproj.emits.result(resultStream(spec, partition), result === null ? 'ResultRemoved' : 'Result', data);
  }
  return next;
}

// The definition the view is made of: KurrentDB's handlers wrapped to get its event object and answer
// by its rule, $created before the first handler of a partition, the default handler (the state becomes
// the event's body) where it has neither named handlers nor $any, results where the chain asks for them,
// and $deleted (a stream's tombstone) called with KurrentDB's arguments, its answer ignored.
function definitionOf(spec, handlers) {
  var definition = {}, named = 0, createdFor = null;   // the event whose fold ran $init (jsproj.current: clock.js)
  if (spec.biState) return biStateDefinition(spec, handlers);
  function call(fn) {
    return function (state, evt, meta) {
      var partition = partitionOf(spec, evt, meta), event = envelope(evt, meta, partition, spec);
      return withResult(spec, state, partition, function () {
        if (createdFor === meta) projected(spec, handlers.$created, [state, event]);
        createdFor = null;
        return fn(state, event);
      });
    };
  }
  function wrap(fn) {
    return call(function (state, event) { return answered(state, projected(spec, fn, [state, event])); });
  }
  if (handlers.$created) {   // $init ran for the event being folded: its handler runs $created first
    var init = handlers.$init;
    definition.$init = function () { createdFor = jsproj.current.meta; return init ? projected(spec, init, []) : {}; };
  }
  Object.keys(handlers).forEach(function (key) {
    var fn = handlers[key];
    if (key === '$created') return;
    if (key === '$init') definition.$init = definition.$init || function () { return projected(spec, fn, []); };
    else if (key === '$deleted') {
      definition.$deleted = function (state, evt, meta) { projected(spec, fn, [state, null, meta.streamId, false]); return state; };
    } else {
      if (key !== '$any') named += 1;
      definition[key] = wrap(fn);
    }
  });
  if (named === 0 && !definition.$any) {
    definition.$any = call(function (state, event) { return event.body; });
  }
  return definition;
}

function checkHandlers(spec, handlers) {
  if (!isPlainObject(handlers)) {
    throw definitionError(spec.file, spec.name + ': when() needs an object of handlers, not ' + typeName(handlers), spec.name);
  }
  Object.keys(handlers).forEach(function (key) {
    if (key.charAt(0) === '$' && HANDLER_KEYS.indexOf(key) < 0) {
      throw definitionError(spec.file, spec.name + ': unknown handler ' + key + ' (known: ' + HANDLER_KEYS.join(', ') +
        ', and event types)', spec.name);
    }
    if (typeof handlers[key] !== 'function') {
      throw definitionError(spec.file, spec.name + ': the handler for ' + key + ' is ' + typeName(handlers[key]) + ', not a function', spec.name);
    }
  });
  if (handlers.$deleted && spec.partition !== 'stream') {
    throw definitionError(spec.file, spec.name + ': Deleted stream notifications are only supported with foreachStream()', spec.name);
  }
  if (handlers.$deleted && spec.biState) {
    throw definitionError(spec.file, spec.name + ': Cannot handle deletes in bi-state projections', spec.name);
  }
}

// A bi-state projection ($initShared, options({biState: true})): one document, {"shared": the shared
// state, "partitions": {partition: its state}}, so that a handler gets both states of one fold (the
// engine folds one document per handler call: a skipped event is taken out of both). Each handler gets
// [partition state, shared state], KurrentDB's pair, and answers by its rule; null resets the partition.
function biStateOf(spec, handlers, definition) {
  var init = definition.$init, initShared = handlers.$initShared;
  definition.$init = function () {
    return { shared: initShared ? projected(spec, initShared, []) : {}, partitions: {} };
  };
  function call(fn) {
    return function (doc, evt, meta) {
      var partition = partitionOf(spec, evt, meta), event = envelope(evt, meta, partition, spec);
      var parts = doc.partitions, fresh = !hasOwn.call(parts, partition);
      var pair = [fresh ? (init ? init() : {}) : parts[partition], doc.shared];
      if (fresh && handlers.$created) projected(spec, handlers.$created, [pair, event]);
      var next = fn(pair, event);
      if (next === DELETE) { delete parts[partition]; return doc; }
      if (!Array.isArray(next) || next.length !== 2 || next[0] == null || next[1] == null) {   // (== null: undefined too)
        throw new TypeError('a bi-state handler answers [partition state, shared state], each a value (or undefined: the ' +
          'pair as changed, or null: the partition reset), not ' + (Array.isArray(next) ? JSON.stringify(next) : typeName(next)));
      }
      Object.defineProperty(parts, partition, { value: next[0], writable: true, enumerable: true, configurable: true });
      doc.shared = next[1];
      return doc;
    };
  }
  return call;
}

// What a selector's arguments select: {all}, {streams}, {categories} or {matching}.
function sourceOf(spec, selector, args) {
  var list = args.length === 1 && Array.isArray(args[0]) ? args[0].slice() : Array.prototype.slice.call(args);
  function strings(what) {
    if (list.length === 0 || !list.every(function (s) { return typeof s === 'string' && s !== ''; })) {
      throw definitionError(spec.file, spec.name + ': ' + selector + '() takes ' + what + ' (text), not ' +
        list.map(typeName).join(', '), spec.name);
    }
    return list;
  }
  if (selector === 'fromAll') return { all: true };
  if (selector === 'fromStream' || selector === 'fromStreams') return { streams: strings('stream ids') };
  if (selector === 'fromStreamsMatching') {
    if (typeof args[0] !== 'function') {
      throw definitionError(spec.file, spec.name + ': fromStreamsMatching() takes a function of the stream id, not ' + typeName(args[0]), spec.name);
    }
    return { matching: args[0], spec: spec };
  }
  return { categories: strings('categories') };
}

function selects(source, meta) {
  if (source.all) return true;
  if (source.streams) return source.streams.indexOf(meta.streamId) >= 0;
  if (source.categories) return source.categories.indexOf(category(meta.streamId)) >= 0;
  return projected(source.spec, source.matching, [meta.streamId]) === true;   // `this`: undefined
}

// The partition of an event: '' (the root), its stream, or partitionBy's key by KurrentDB's rule (text
// as it is, a number as text, anything else: the event is not the projection's); null when it is none.
function partitionOf(spec, evt, meta) {
  if (spec.partition === null) return '';
  if (spec.partition === 'stream') return meta.streamId;
  var key = projected(spec, spec.partition, [envelope(evt, meta, '', spec)]);
  if (typeof key === 'number' && isFinite(key)) key = String(key);
  if (typeof key !== 'string') return null;
  var reason = key === '' ? null : jsproj.badId(key);
  if (reason) throw new TypeError('partitionBy returned a key that ' + reason);
  if (key === spec.name) {
    throw new TypeError('partitionBy returned ' + JSON.stringify(key) + ", the key of the root partition's document " +
      "(the projection's name, where '' goes): rename the projection's file or the partition");
  }
  return key;
}

// Whether an event is a projection's result (emits.js marks them; no application can: pge_append refuses
// $projection). KurrentDB's result streams are system streams, which no projection reads; neither do links.
function isResult(meta) {
  var m = meta.metadata;
  return m !== null && typeof m === 'object' && m.$result === true && typeof m.$projection === 'string';
}

// The document of an event (the view's key): its partition, the root's being the projection's name.
function identify(spec, evt, meta) {
  if (evt.$type === jsproj.emits.LINK || isResult(meta) || !selects(spec.source, meta)) return null;
  var partition = partitionOf(spec, evt, meta);
  if (partition === null) return null;
  return partition === '' || spec.biState ? spec.name : partition;   // (a bi-state projection is one document)
}

jsproj.kurrentdb = { NAMES: NAMES, SELECTORS: SELECTORS, OUTPUTS: OUTPUTS, OPTION_TYPES: OPTION_TYPES,
  category: category, nameOf: nameOf, definitionOf: definitionOf, checkHandlers: checkHandlers, output: output,
  sourceOf: sourceOf, identify: identify, partitionOf: partitionOf, resultStream: resultStream };
