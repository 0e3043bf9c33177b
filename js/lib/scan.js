'use strict';
// What loading a file says about the JavaScript it uses that is not
// jsproj's (surface.js): in every host alike, so that `jsproj check` and
// `jsproj deploy` name it before any event does, wherever the file runs.
// - An error: a static built-in that some host has and jsproj's JavaScript
//   has not, named on its object (`Object.groupBy(...)`, `Error.captureStackTrace`;
//   `typeof Object.groupBy`, which asks whether it is there, is fine);
//   a regular expression with the flag `v` (V8 11 and 14 have it; V8 10 and
//   QuickJS refuse the file).
// - A note (the load goes on): a call of a method some built-in has in some
//   host and not in jsproj's JavaScript (`.toSorted(`, `.union(`): it may be
//   a method of the file's own objects; if it is the built-in's, it throws
//   "is not a function" in every host.
// Comments, strings and template text are left out of the search.

var CODE_ONLY = /\/\/[^\n]*|\/\*[\s\S]*?\*\/|'(?:[^'\\\n]|\\[\s\S])*'|"(?:[^"\\\n]|\\[\s\S])*"|`(?:[^`\\$]|\\[\s\S]|\$(?!\{))*(?:`|\$\{)/g;

// The source with comments, strings and template text blanked (their lines kept).
function codeOf(source) {
  return source.replace(CODE_ONLY, function (text) {
    return text.replace(/[^\n]/g, ' ');
  });
}

function lineAt(source, index) {
  return source.slice(0, index).split('\n').length;
}

function escapeName(name) {
  return name.replace(/[$]/g, '\\$');
}

// The first static use of a removed built-in: {line, name}, or null.
function staticUse(code) {
  var removed = jsproj.REMOVED_SURFACE, found = null;
  Object.keys(removed).forEach(function (path) {
    if (path.indexOf('.') >= 0 || path.charAt(0) === '%') return;       // prototypes: noteUses
    var names = removed[path].map(escapeName).join('|'), use;
    var pattern = new RegExp('(^|[^\\w$.])' + escapeName(path) + '\\s*\\.\\s*(' + names + ')(?![\\w$])', 'g');
    while ((use = pattern.exec(code)) !== null) {
      if (/typeof\s*$/.test(code.slice(Math.max(0, use.index - 20), use.index + use[1].length))) continue;  // feature detection
      if (found === null || use.index < found.index) found = { index: use.index, name: path + '.' + use[2] };
      break;
    }
  });
  return found === null ? null : { line: lineAt(code, found.index), name: found.name };
}

// Calls of methods some host's built-ins have and jsproj's JavaScript has not: [{line, name, owners}].
function noteUses(code) {
  var removed = jsproj.REMOVED_SURFACE, kept = new Set(), owners = new Map();
  Object.keys(jsproj.PINNED_SURFACE).forEach(function (path) { jsproj.PINNED_SURFACE[path].forEach(function (k) { kept.add(k); }); });
  Object.keys(removed).forEach(function (path) {
    if (path.indexOf('.') < 0 && path.charAt(0) !== '%') return;
    removed[path].forEach(function (name) {
      if (kept.has(name)) return;
      if (!owners.has(name)) owners.set(name, []);
      owners.get(name).push(path.replace(/\[@@\w+\]$/, ''));
    });
  });
  if (owners.size === 0) return [];
  var notes = [], call = new RegExp('\\.\\s*(' + Array.from(owners.keys()).map(escapeName).join('|') + ')\\s*\\(', 'g'), use;
  while ((use = call.exec(code)) !== null) {
    notes.push({ line: lineAt(code, use.index), name: use[1], owners: owners.get(use[1]).filter(function (o, i, all) { return all.indexOf(o) === i; }) });
  }
  return notes;
}

// Regular expression literals with the flag v: decided by the host's own parser. `parses(text)`
// says whether a text parses. Where the source parses (V8 11, 14), a literal's flags with the v
// made invalid no longer parse; where it does not (V8 10, QuickJS), it parses without the v.
var FLAGS = /\/([dgimsuy]*v[dgimsuvy]*)(?![\w$])/g;
function flagV(source, parses) {
  var candidates = [], match;
  FLAGS.lastIndex = 0;
  while ((match = FLAGS.exec(source)) !== null) candidates.push(match.index + 1 + match[1].indexOf('v'));
  if (candidates.length === 0) return null;
  var without = function (list, by) {
    var text = '', from = 0;
    list.forEach(function (at) { text += source.slice(from, at) + by; from = at + 1; });
    return text + source.slice(from);
  };
  if (parses(source)) {
    for (var i = 0; i < candidates.length; i++) {
      if (!parses(without([candidates[i]], 'Q'))) return { line: lineAt(source, candidates[i]) };
    }
    return null;
  }
  return parses(without(candidates, '')) ? { line: lineAt(source, candidates[0]) } : null;
}

jsproj.scanCode = codeOf;
jsproj.staticUse = staticUse;
jsproj.noteUses = noteUses;
jsproj.regexpFlagV = flagV;
