'use strict';
// The client's errors: a class for every kind of jsproj's error table
// (js/errors.json, which jsproj.errors in Python is built from too), each
// error's `kind` its class name, built from PostgreSQL's SQLSTATE by the
// table's rules and, for engine errors, the JSON description the store puts
// in DETAIL.
const TABLE = require('@jsproj/projections/errors.json');

const own = (object, key) => Object.prototype.hasOwnProperty.call(object, key);

class JsprojError extends Error {
  constructor(message, info = {}) {
    super(message);
    this.name = this.constructor.name;
    this.kind = this.constructor.name;
    Object.assign(this, info);
  }
}

// Every kind of the table as a class named after it, under its parent's.
function buildClasses() {
  const classes = { JsprojError };
  const make = (kind) => {
    if (!own(classes, kind)) {
      const Parent = make(TABLE.kinds[kind].parent);
      classes[kind] = { [kind]: class extends Parent {} }[kind];
    }
    return classes[kind];
  };
  Object.keys(TABLE.kinds).forEach(make);
  return classes;
}

const CLASSES = buildClasses();
const { ProjectionError, SandboxLimitError } = CLASSES;

// Each SQLSTATE a kind lists: {kind, message template}.
const BY_SQLSTATE = new Map();
Object.keys(TABLE.kinds).forEach((kind) => {
  Object.entries(TABLE.kinds[kind].sqlstates).forEach(([state, message]) => BY_SQLSTATE.set(state, { kind, message }));
});

// The driver's codes for a connection that failed before PostgreSQL answered: one of class 08.
const UNREACHABLE = ['ECONNREFUSED', 'ENOENT', 'ECONNRESET'];
const CONNECTION_EXCEPTION = '08000';

// The table's rule for a SQLSTATE: the kind listing it, else its class's (its first two characters), else
// the rule for any other state; '' (an error without a SQLSTATE) has its own.
function rule(state) {
  if (BY_SQLSTATE.has(state)) return BY_SQLSTATE.get(state);
  if (!state) return TABLE.noState;
  return own(TABLE.classes, state.slice(0, 2)) ? TABLE.classes[state.slice(0, 2)] : TABLE.otherState;
}

// A template of the table filled in: {message} is PostgreSQL's message, {code} the SQLSTATE.
function fill(template, values) {
  return template.replace(/\{(message|code)\}/g, (_, name) => values[name]);
}

// An engine error described as {kind, message, ...} (the store's DETAIL, or the engine's own).
function fromInfo(info, fallback) {
  const Class = (own(CLASSES, info.kind) && CLASSES[info.kind]) || (/Sandbox/.test(info.kind) ? SandboxLimitError : fallback);
  const { kind, message, ...fields } = info;
  return new Class(message, Object.assign(fields, Class === fallback && kind ? { engineKind: kind } : {}));
}

function detailInfo(error) {
  try {
    const info = JSON.parse(error.detail || '');
    return info && typeof info === 'object' && !Array.isArray(info) ? info : null;
  } catch (e) {
    return null;
  }
}

// The jsproj error for an error of the `pg` driver (or the error itself when it is already one).
function translate(error) {
  if (error instanceof JsprojError) return error;
  const code = error && error.code;
  const message = error && error.message ? error.message : String(error);
  const info = detailInfo(error || {});
  const fields = { code: code || null };
  const described = info && typeof info.message === 'string' ? info : null;
  const kind = described && typeof described.kind === 'string' ? described.kind : '';
  if (code === 'JP500' && kind) return Object.assign(fromInfo(described, ProjectionError), fields);
  if (/^Sandbox/.test(kind)) return Object.assign(fromInfo(described, SandboxLimitError), fields);
  const state = UNREACHABLE.includes(code) ? CONNECTION_EXCEPTION : typeof code === 'string' ? code : '';
  const found = rule(state);
  return new CLASSES[found.kind](fill(found.message, { message, code: state }), Object.assign(detailFields(state, info), fields));
}

// The fields a JSON DETAIL adds to the error: those of a state a kind lists (jsproj's SQL writes them; any
// other state's DETAIL is PostgreSQL's), never its kind or message.
function detailFields(state, info) {
  if (!info || !BY_SQLSTATE.has(state)) return {};
  const { kind, message, ...fields } = info;
  return fields;
}

module.exports = Object.assign({ translate, fromInfo }, CLASSES);
