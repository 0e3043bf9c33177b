'use strict';
// Loading projection files: compile each source into a function that gets
// the DSL (a facade: projector.js) through `require('…/projections')` or the
// `projections` global, run it against a projector, and describe what it
// defined.

var fail = jsproj.fail, describeThrown = jsproj.describeThrown, firstLine = jsproj.firstLine;
var typeName = jsproj.typeName, current = jsproj.current, realm = jsproj.realm;
// The engine's own compilers, kept before the sandboxed hosts take eval and
// Function away from projection code (realm.js, lockdown.js).
var compileFunction = realm.Function, evaluate = realm.eval;

// require() paths that resolve to the DSL: any path ending in "projections"
// (the brief; this package's npm name, '@jsproj/projections', is one), the
// original spike's module names, and the package's old name, 'jsproj'.
var DSL_MODULE = /(^|\/)(projections|pg-events|postgres-projections|jsproj)(\.js)?$/;
// Projection code runs in strict mode, as Hardened JavaScript does: a
// function called plainly gets `this` undefined, never the global object,
// so the file's scope (below) is the only way to anything global.
var STRICT = "'use strict'; ";
// What a file's code gets by name: the DSL, CommonJS's names, its console,
// the deterministic Date and Math (clock.js), its own globalThis (the pinned
// globals: surface.js) and an eval that refuses. Every other name the global
// object holds -- a host's entry points, Node's process -- and those below,
// which some host has, are undefined in the file's scope, in every host alike.
// KurrentDB's DSL (kurrentdb-scope.js) comes after: fromAll, fromCategory, ..., options, emit, ...
var PARAMETERS = ['require', 'projections', 'module', 'exports', 'console', 'Date', 'Math', 'globalThis', 'eval']
  .concat(jsproj.kurrentdb.NAMES);
var HIDDEN = ['Promise', 'queueMicrotask', 'setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval',
  'clearImmediate', 'process', 'global', 'Buffer', 'fetch', 'performance', 'crypto', 'structuredClone', 'plv8', 'pljs',
  'self', 'window', 'print', 'std', 'os', 'jsproj'];
var IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
var refusedEval = Object.freeze({ eval(code) { throw new TypeError('eval is not available to projections'); } }.eval);
var MAX_LOGS = 1000;
// Words whose keyword forms start asynchronous work (async functions,
// dynamic import()), and what each becomes to find out whether it is one:
// the stand-in parses wherever the word is an identifier, a property name,
// or inside a string, comment or regular expression, and nowhere else.
var ASYNC_WORDS = /(^|[^\w$\\])(async|import)(?![\w$])/g;
var STAND_IN = { async: '_sync', import: 'class' };
var MAX_PROBES = 200;

// What projections print with console.*, drained by the host after each call.
var logs = [];
var droppedLogs = 0;

function formatLogArgument(value) {
  if (typeof value === 'string') return value;
  try {
    var text = JSON.stringify(value);
    return text === undefined ? String(value) : text;
  } catch (e) {
    return String(value);
  }
}

function consoleFor(file) {
  function log(level) {
    return function () {
      if (logs.length >= MAX_LOGS) { droppedLogs += 1; return; }
      logs.push({
        level: level,
        file: file,
        projection: current.projection,
        position: current.meta ? current.meta.position : null,
        message: Array.prototype.map.call(arguments, formatLogArgument).join(' ')
      });
    };
  }
  return Object.freeze({ log: log('log'), info: log('info'), warn: log('warn'), error: log('error'), debug: log('debug') });
}

function drainLogs() {
  var drained = logs;
  if (droppedLogs) drained.push({ level: 'warn', file: null, projection: null, position: null, message: droppedLogs + ' more log lines dropped' });
  logs = [];
  droppedLogs = 0;
  return drained;
}

function requireFor(facade, file) {
  return function require(path) {
    if (typeof path === 'string' && DSL_MODULE.test(path.replace(/\\/g, '/'))) return facade;
    throw fail('ProjectionDefinitionError', file + ': require(' + JSON.stringify(path) + ') is not available to projections: ' +
      "they can require only the DSL, a path ending in 'projections'", { file: file, projection: null });
  };
}

function parses(source) {
  try {
    compileFunction(STRICT + source);
    return true;
  } catch (e) {
    return false;
  }
}

// The names of a file's scope and what each is: PARAMETERS but eval are
// given per file (run); the pinned globals are the real ones, Date and Math
// the clock's; any other global name is shadowed by undefined. Fixed once a
// context is locked down; computed afresh where it is not (Node's own
// context, whose globals the application may change).
function fileScope() {
  if (realm.scope) return realm.scope;
  var global = globalThis, names = PARAMETERS.slice(), values = [], seen = new Set(names);
  var own = jsproj.surfaceGlobals(global);
  var scope = {};
  own.forEach(function (name) { scope[name] = global[name]; });
  scope.globalThis = scope;
  scope.Date = jsproj.ClockDate;
  scope.Math = jsproj.ClockMath;
  scope.eval = refusedEval;
  Object.freeze(scope);
  HIDDEN.concat(Object.getOwnPropertyNames(global)).forEach(function (name) {
    if (seen.has(name) || !IDENTIFIER.test(name) || name === 'arguments' || Object.prototype.hasOwnProperty.call(scope, name)) return;
    seen.add(name);
    names.push(name);
    values.push(undefined);
  });
  var made = Object.freeze({ names: Object.freeze(names), hidden: Object.freeze(values), globalThis: scope });
  if (realm.lockedDown) realm.scope = made;
  return made;
}
// The line of the first async function or import() in `source` (which
// parses), 0 when it has none. A handler must finish its work before it
// returns: work left for later would run outside its time limit, charged to
// whatever runs next. The host's own parser decides what is a keyword.
function asyncUse(source) {
  var found = [];
  source.replace(ASYNC_WORDS, function (match, before, word, offset) {
    found.push({ at: offset + before.length, word: word });
    return match;
  });
  if (found.length === 0) return 0;
  function standIn(list) {
    var text = '', from = 0;
    list.forEach(function (f) { text += source.slice(from, f.at) + STAND_IN[f.word]; from = f.at + f.word.length; });
    return text + source.slice(from);
  }
  if (parses(standIn(found))) return 0;
  for (var i = 0; i < found.length && i < MAX_PROBES; i++) {
    if (!parses(standIn([found[i]]))) return { line: source.slice(0, found[i].at).split('\n').length, word: found[i].word };
  }
  return { line: null, word: 'async' };
}

// What a file uses of the JavaScript some host has and jsproj's has not (scan.js): the flag v
// of a regular expression and a removed static built-in are errors; a call of a removed method
// is a note in the file's log (it may be a method of the file's own objects).
function checkJavaScript(file, source) {
  var flag = jsproj.regexpFlagV(source, parses);
  if (flag !== null) {
    throw fail('ProjectionSyntaxError', file + ':' + flag.line + ': the regular expression flag v is not part of ' +
      "jsproj's JavaScript (V8 10 and QuickJS refuse it): docs/javascript.md", { file: file, line: flag.line });
  }
  var code = jsproj.scanCode(source), use = jsproj.staticUse(code);
  if (use !== null) {
    throw fail('ProjectionDefinitionError', file + ':' + use.line + ': ' + use.name + " is not part of jsproj's " +
      'JavaScript (some hosts have it, not all): docs/javascript.md', { file: file, line: use.line, projection: null });
  }
  jsproj.noteUses(code).forEach(function (note) {
    logs.push({ level: 'warn', file: file, projection: null, position: null, message: file + ':' + note.line + ': .' +
      note.name + "() is not part of jsproj's JavaScript (" + note.owners.map(function (o) { return o + '.' + note.name; })
      .join(', ') + ' is in some hosts only: docs/javascript.md); a method of your own objects of that name is fine' });
  });
}

function checkSource(file, source) {
  if (typeof source !== 'string') {
    throw fail('ProjectionDefinitionError', file + ': the source must be text, not ' + typeName(source), { file: file, projection: null });
  }
  try {
    compileFunction(STRICT + source);
  } catch (e) {
    if (jsproj.regexpFlagV(source, parses) !== null) checkJavaScript(file, source);
    var thrown = describeThrown(e);
    throw fail('ProjectionSyntaxError', file + ': ' + thrown.name + ': ' + thrown.message, { file: file, line: null });
  }
  checkJavaScript(file, source);
  var use = asyncUse(source);
  if (use) {
    throw fail('ProjectionDefinitionError', file + (use.line ? ':' + use.line : '') + ': ' +
      (use.word === 'import' ? 'import() is' : 'async functions are') + ' not available to projections: ' +
      'a handler must finish its work before it returns', { file: file, line: use.line, projection: null });
  }
}

// The source as the body of a strict function inside one whose parameters
// are the file's scope. The body is parsed on its own first (new Function),
// so a source cannot close the wrapper and run code outside it; the eval'd
// wrapper keeps line numbers and names the file in stack traces.
function compile(file, source) {
  checkSource(file, source);
  var url = String(file).replace(/[^\w.\/@+-]/g, '_');
  var scope = fileScope();
  var factory = evaluate('(function (' + scope.names.join(', ') + ') { return function () { ' + STRICT + source +
    '\n}; })\n//# sourceURL=' + url);
  return { factory: factory, scope: scope };
}

// Run a compiled file with what it may reach.
function run(compiled, projector, file) {
  var module = { exports: {} }, facade = jsproj.facadeFor(projector, file), kurrent = jsproj.kurrentdbScope(projector, file);
  jsproj.clearRegExpStatics();  // nothing of the previous file's matches
  var scope = compiled.scope;
  var body = compiled.factory.apply(undefined, [requireFor(facade, file), facade, module, module.exports, consoleFor(file),
    jsproj.ClockDate, jsproj.ClockMath, scope.globalThis, refusedEval].concat(kurrent.values, scope.hidden));
  body();
  kurrent.finish();
}

// The first line of `file` that a stack trace points at, if any.
function lineIn(stack, file) {
  if (!stack) return null;
  var url = String(file).replace(/[^\w.\/@+-]/g, '_');
  var lines = stack.split('\n');
  for (var i = 0; i < lines.length; i++) {
    var at = lines[i].lastIndexOf(url + ':');
    if (at >= 0) {
      var match = /^:(\d+)/.exec(lines[i].slice(at + url.length));
      if (match) return Number(match[1]);
    }
  }
  return null;
}

// Run every source (sorted by file name) against the projector. Names must be
// unique across files; the first problem is thrown with its file.
function loadInto(projector, sources) {
  if (!Array.isArray(sources)) throw fail('EngineError', 'sources must be a list of {file, source}');
  var sorted = sources.slice().sort(function (a, b) { return a.file < b.file ? -1 : a.file > b.file ? 1 : 0; });
  sorted.forEach(function (item) {
    var file = String(item.file);
    var factory = compile(file, item.source);
    projector.file = file;
    current.file = file;
    try {
      run(factory, projector, file);
    } catch (e) {
      if (jsproj.isEngineError(e)) throw e;
      if (jsproj.outOfMemory(e)) {
        throw fail('SandboxMemoryError', 'projection file ' + file + ' went past the memory limit', { file: file, projection: null });
      }
      var thrown = describeThrown(e);
      var line = lineIn(thrown.stack, file);
      var error = fail('ProjectionDefinitionError', file + (line ? ':' + line : '') + ': ' + thrown.name + ': ' + firstLine(thrown.message),
        { file: file, line: line, projection: null });
      error.jsStack = jsproj.userStack(thrown.stack);
      if (error.jsStack) error.stack = error.jsStack;
      throw error;
    } finally {
      projector.file = null;
      current.file = null;
    }
  });
  projector.upcasters.check();   // as a whole: a rename and an upcaster of one type may be in two files
  describe(projector);
  return projector;
}

// Run a piece of code typed at a REPL against `projector`, like a projection
// file named `repl`; returns the value of its last expression statement (a
// direct eval inside the file's function: its `eval` parameter is the real
// one, which projection code does not get). Definitions land in `projector`.
function evaluateCode(projector, code) {
  code = String(code);
  var use = parses(code) ? asyncUse(code) : 0;
  if (use) {
    throw fail('ProjectionDefinitionError', (use.word === 'import' ? 'import() is' : 'async functions are') +
      ' not available to projections: a handler must finish its work before it returns', { file: 'repl', projection: null });
  }
  var scope = fileScope();
  // `eval`, a parameter of the file scope: here the real one, so that the inner call is a direct eval.
  var factory = evaluate('(function (' + scope.names.join(', ') + ') { return function () { ' + STRICT + 'return eval(' +
    JSON.stringify(code) + ');\n}; })\n//# sourceURL=repl');
  var facade = jsproj.facadeFor(projector, 'repl'), kurrent = jsproj.kurrentdbScope(projector, 'repl');
  var module = { exports: {} };
  projector.file = 'repl';
  current.file = 'repl';
  try {
    return factory.apply(undefined, [requireFor(facade, 'repl'), facade, module, module.exports, consoleFor('repl'),
      jsproj.ClockDate, jsproj.ClockMath, scope.globalThis, evaluate].concat(kurrent.values, scope.hidden))();
  } catch (e) {
    if (jsproj.isEngineError(e)) throw e;
    var thrown = describeThrown(e);
    var error = fail('ProjectionDefinitionError', thrown.name + ': ' + firstLine(thrown.message), { file: 'repl', projection: null });
    error.jsStack = jsproj.userStack(thrown.stack);
    throw error;
  } finally {
    projector.file = null;
    current.file = null;
  }
}

// What each projection is: name, kind, lifecycle, what it subscribes to, its indexed fields.
function describe(projector) {
  return projector.activeProjectionNames().map(function (name) {
    var p = projector.projections[name];
    if (jsproj.LIFECYCLES.indexOf(p.lifecycle) < 0) {
      throw jsproj.definitionError(p.file, name + ': unknown lifecycle ' + JSON.stringify(p.lifecycle) +
        ' (use .inline(), .async() or .live())', name);
    }
    var reaching = projector.upcasters.reaching(p);
    return {
      name: name,
      kind: p.kind,
      lifecycle: p.lifecycle,
      file: p.file,
      streamType: p.kind === 'stream' ? p.streamType : null,
      eventTypes: p.kind === 'event' ? [p.eventType] : p.handlers.eventTypes(),
      anyEvent: p.kind === 'event' ? false : p.handlers.any !== null,
      indexes: p.indexes.slice(),
      version: p.revision,
      // the old names of the types it handles, and the upcasters and renames its input goes through (upcast.js)
      renamedFrom: reaching.renamedFrom,
      upcasters: reaching.upcasters
    };
  });
}

// Every upcaster and rename of a projector: {upcasters: [...], renames: [...]} (upcast.js).
function describeUpcasters(projector) {
  return projector.upcasters.ready().describe();
}

jsproj.compile = compile;
jsproj.loadInto = loadInto;
jsproj.evaluate = evaluateCode;
jsproj.describe = describe;
jsproj.describeUpcasters = describeUpcasters;
jsproj.drainLogs = drainLogs;
