'use strict';
// Loading projection files: compile each source into a function that gets
// the DSL through `require('…/projections')` or the `projections` global,
// run it against a projector, and describe what it defined.

var fail = jsproj.fail, describeThrown = jsproj.describeThrown, firstLine = jsproj.firstLine;
var typeName = jsproj.typeName;

// require() paths that resolve to the DSL: any path ending in "projections"
// (the brief), the original spike's module names, and this package.
var DSL_MODULE = /(^|\/)(projections|pg-events|postgres-projections|jsproj)(\.js)?$/;
var PARAMETERS = ['require', 'projections', 'module', 'exports', 'console'];
var MAX_LOGS = 1000;

// What projections print with console.*, drained by the host after each call.
var logs = [];
var droppedLogs = 0;
// What is running now: read by a host after a time or memory limit stops a call.
var current = { file: null, projection: null, record: null };

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
        position: current.record ? current.record.position : null,
        message: Array.prototype.map.call(arguments, formatLogArgument).join(' ')
      });
    };
  }
  return { log: log('log'), info: log('info'), warn: log('warn'), error: log('error'), debug: log('debug') };
}

function drainLogs() {
  var drained = logs;
  if (droppedLogs) drained.push({ level: 'warn', file: null, projection: null, position: null, message: droppedLogs + ' more log lines dropped' });
  logs = [];
  droppedLogs = 0;
  return drained;
}

function requireFor(projector, file) {
  return function require(path) {
    if (typeof path === 'string' && DSL_MODULE.test(path.replace(/\\/g, '/'))) return projector;
    throw fail('ProjectionDefinitionError', file + ': require(' + JSON.stringify(path) + ') is not available to projections: ' +
      "they can require only the DSL, a path ending in 'projections'", { file: file, projection: null });
  };
}

// The source as a function of PARAMETERS. The body is parsed on its own first
// (new Function), so a source cannot close the wrapper and run code outside it;
// the eval'd wrapper keeps line numbers and names the file in stack traces.
function compile(file, source) {
  if (typeof source !== 'string') {
    throw fail('ProjectionDefinitionError', file + ': the source must be text, not ' + typeName(source), { file: file, projection: null });
  }
  try {
    Function.apply(null, PARAMETERS.concat([source]));
  } catch (e) {
    var thrown = describeThrown(e);
    throw fail('ProjectionSyntaxError', file + ': ' + thrown.name + ': ' + thrown.message, { file: file, line: null });
  }
  var url = String(file).replace(/[^\w.\/@+-]/g, '_');
  return (0, eval)('(function (' + PARAMETERS.join(', ') + ') {' + source + '\n})\n//# sourceURL=' + url);
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
    var module = { exports: {} };
    projector.file = file;
    current.file = file;
    try {
      factory.call(undefined, requireFor(projector, file), projector, module, module.exports, consoleFor(file));
    } catch (e) {
      if (e && e.kind) throw e;
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
  describe(projector);
  return projector;
}

// Run a piece of code typed at a REPL against `projector`, like a projection
// file named `repl`; returns the value of its last expression statement (a
// direct eval inside the file's function). Definitions land in `projector`.
function evaluate(projector, code) {
  var factory = compile('repl', 'return eval(' + JSON.stringify(String(code)) + ');');
  var module = { exports: {} };
  projector.file = 'repl';
  current.file = 'repl';
  try {
    return factory.call(undefined, requireFor(projector, 'repl'), projector, module, module.exports, consoleFor('repl'));
  } catch (e) {
    if (e && e.kind) throw e;
    var thrown = describeThrown(e);
    var error = fail('ProjectionDefinitionError', thrown.name + ': ' + firstLine(thrown.message), { file: 'repl', projection: null });
    error.jsStack = jsproj.userStack(thrown.stack);
    throw error;
  } finally {
    projector.file = null;
    current.file = null;
  }
}

// What each projection is: name, kind, lifecycle, what it subscribes to.
function describe(projector) {
  return projector.activeProjectionNames().map(function (name) {
    var p = projector.projections[name];
    if (jsproj.LIFECYCLES.indexOf(p.lifecycle) < 0) {
      throw jsproj.definitionError(p.file, name + ': unknown lifecycle ' + JSON.stringify(p.lifecycle) +
        ' (use .inline(), .async() or .live())', name);
    }
    return {
      name: name,
      kind: p.kind,
      lifecycle: p.lifecycle,
      file: p.file,
      streamType: p.kind === 'stream' ? p.streamType : null,
      eventTypes: p.kind === 'event' ? [p.eventType] : p.handlers.eventTypes(),
      anyEvent: p.kind === 'event' ? false : p.handlers.any !== null
    };
  });
}

jsproj.compile = compile;
jsproj.loadInto = loadInto;
jsproj.evaluate = evaluate;
jsproj.describe = describe;
jsproj.drainLogs = drainLogs;
jsproj.current = current;
