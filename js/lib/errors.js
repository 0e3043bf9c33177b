'use strict';
// Structured errors shared by every host. Each lib file is loaded by every
// host as the body of `function (jsproj) { ... }`, in the order of bundle.json.

// The errors the engine made. Only these pass through as jsproj errors:
// projection code that throws {kind: ...} gets its throw reported as its
// own failure, never as an error of another kind or about another projection.
var issued = new WeakSet();

// An Error carrying a `kind` (the class name hosts map it to) and the
// fields that locate the problem (file, projection, event, stream, ...).
function fail(kind, message, details) {
  var error = new Error(message);
  error.name = kind;
  error.kind = kind;
  if (details) {
    Object.keys(details).forEach(function (key) { error[key] = details[key]; });
  }
  issued.add(error);
  return error;
}

function isEngineError(value) {
  return value !== null && typeof value === 'object' && issued.has(value);
}

// A field of a thrown value as text, or `fallback`: reading it runs
// projection code (getters, proxies), which must not break the report.
function field(value, name, fallback) {
  try {
    var v = value[name];
    return v === undefined || v === null ? fallback : String(v);
  } catch (e) {
    return fallback;
  }
}

// The value as text, where it has a text that asking for runs no more than
// a getter or toString that may throw (caught); null where it has none.
function asText(value) {
  try {
    if (typeof value === 'string') return value;
    var text = JSON.stringify(value);
    if (typeof text === 'string') return text;
  } catch (e) { /* a throwing toJSON, getter or proxy trap; cyclic; BigInt */ }
  try {
    return String(value);
  } catch (e) {
    return null;
  }
}

// What a thrown value says about itself, whatever was thrown (the original
// spike threw plain strings). Total: a Proxy whose every trap throws, a
// revoked Proxy, a symbol or an object whose toString throws still gives a
// description, so that the error names the projection and event it came
// from instead of escaping the engine.
function describeThrown(value) {
  if (value !== null && (typeof value === 'object' || typeof value === 'function')) {
    var message = field(value, 'message', null);
    if (message !== null) {
      var stack = null;
      try { stack = typeof value.stack === 'string' ? value.stack : null; } catch (e) { /* a throwing getter */ }
      return { name: field(value, 'name', 'Error') || 'Error', message: message, stack: stack };
    }
  }
  var text = asText(value);
  if (text === null) text = 'a thrown ' + typeof value + ' that cannot be shown';
  return { name: 'Error', message: text, stack: null };
}

// Whether a thrown value is the engine running out of memory where the
// engine lets code catch it (QuickJS: InternalError "out of memory"; V8 ends
// the call instead). It is a limit of the sandbox, as V8's: the call ends
// with SandboxMemoryError naming what ran, never a handler's own error.
function outOfMemory(value) {
  return value !== null && typeof value === 'object' && field(value, 'name', '') === 'InternalError' &&
    /^out of memory$/.test(field(value, 'message', ''));
}

function memoryError(projection, meta) {
  var where = meta ? ' (on ' + meta.eventType + ' event at position ' + meta.position + ')' : '';
  return fail('SandboxMemoryError', 'projection ' + projection + where + ' went past the memory limit', {
    projection: projection, position: meta ? meta.position : null, eventId: meta ? meta.eventId : null,
    eventType: meta ? meta.eventType : null, streamId: meta ? meta.streamId : null
  });
}

// A plain JSON-able description of any error: jsproj errors keep their
// fields; anything else becomes an InternalError with its stack.
function errorInfo(error) {
  if (isEngineError(error)) {
    var info = { kind: error.kind, message: error.message };
    Object.keys(error).forEach(function (key) {
      if (key !== 'kind' && key !== 'name' && key !== 'jsStack') info[key] = error[key];
    });
    // The stack of the projection code at fault, where there is one (not the engine's).
    info.stack = error.jsStack || null;
    return info;
  }
  if (outOfMemory(error)) {
    var running = jsproj.current && jsproj.current.projection;
    return { kind: 'SandboxMemoryError', message: (running ? 'projection ' + running : 'projection code') +
      ' went past the memory limit', projection: running || null, stack: null };
  }
  var thrown = describeThrown(error);
  // (V8: RangeError "Maximum call stack size exceeded"; QuickJS: InternalError "stack overflow")
  var kind = /^(RangeError|InternalError)$/.test(thrown.name) && /call stack|stack overflow/i.test(thrown.message)
    ? 'StackOverflowError' : 'InternalError';
  return { kind: kind, message: thrown.name + ': ' + thrown.message, stack: thrown.stack };
}

// A stack trace cut at the first frame inside the engine: what the user's code did.
var ENGINE_FRAME = /[\\/]lib[\\/](?:errors|values|documents|clock|dsl|upcast|tracking|projector|load|policies|engine|log|records|simulate|cache|host|lockdown)\.js:\d+/;
function userStack(stack) {
  if (typeof stack !== 'string') return stack;
  var lines = stack.split('\n');
  for (var i = 1; i < lines.length; i++) {
    if (ENGINE_FRAME.test(lines[i])) return lines.slice(0, i).join('\n');
  }
  return stack;
}

function firstLine(text) {
  var line = String(text).split('\n')[0];
  return line.length > 500 ? line.slice(0, 497) + '...' : line;
}

jsproj.fail = fail;
jsproj.outOfMemory = outOfMemory;
jsproj.memoryError = memoryError;
jsproj.isEngineError = isEngineError;
jsproj.describeThrown = describeThrown;
jsproj.errorInfo = errorInfo;
jsproj.firstLine = firstLine;
jsproj.userStack = userStack;
