'use strict';
// The client's errors: one small hierarchy mirroring jsproj.errors (Python),
// each error's `kind` its class name, built from PostgreSQL's SQLSTATE and,
// for engine errors, the JSON description the store puts in DETAIL.

class JsprojError extends Error {
  constructor(message, info = {}) {
    super(message);
    this.name = this.constructor.name;
    this.kind = this.constructor.name;
    Object.assign(this, info);
  }
}
class InputError extends JsprojError {}
class InvalidEventError extends InputError {}
class BatchTooLargeError extends InputError {}
class ConcurrencyError extends JsprojError {}
class UnknownProjectionError extends JsprojError {}
class ProjectionError extends JsprojError {}
class ProjectionHandlerError extends ProjectionError {}
class DocumentError extends ProjectionHandlerError {}
class SandboxLimitError extends ProjectionError {}
class SandboxTimeoutError extends SandboxLimitError {}
class SandboxMemoryError extends SandboxLimitError {}
class StoreError extends JsprojError {}
class StoreUnavailableError extends StoreError {}
class SchemaMissingError extends StoreError {}
class PythonEngineRequiredError extends StoreError {}

const CLASSES = {
  JsprojError, InputError, InvalidEventError, BatchTooLargeError, ConcurrencyError, UnknownProjectionError, ProjectionError,
  ProjectionHandlerError, DocumentError, SandboxLimitError, SandboxTimeoutError, SandboxMemoryError, StoreError,
  StoreUnavailableError, SchemaMissingError, PythonEngineRequiredError
};

// An engine error described as {kind, message, ...} (the store's DETAIL, or the engine's own).
function fromInfo(info, fallback) {
  const Class = CLASSES[info.kind] || (/Sandbox/.test(info.kind) ? SandboxLimitError : fallback);
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
  if (code === 'JP409') return new ConcurrencyError(message, Object.assign(fields, info || {}));
  if (code === 'JP400') return new InvalidEventError(message, Object.assign(fields, info || {}));  // messageNumber in a batch
  if (code === 'JP413') return new BatchTooLargeError(message, fields);
  if (code === 'JP404') return new UnknownProjectionError(message, fields);
  if (code === 'JP503') return new PythonEngineRequiredError(message, fields);
  const described = info && typeof info.message === 'string' ? info : null;
  if (code === 'JP500' && described) return Object.assign(fromInfo(described, ProjectionError), fields);
  if (described && /^Sandbox/.test(described.kind || '')) return Object.assign(fromInfo(described, SandboxLimitError), fields);
  if (code === '42883' || code === '42P01') {
    return new SchemaMissingError("the store's schema is missing or outdated (" + message + '): run `jsproj migrate`', fields);
  }
  if (typeof code === 'string' && code.startsWith('08') || ['ECONNREFUSED', 'ENOENT', 'ECONNRESET'].includes(code)) {
    return new StoreUnavailableError('PostgreSQL is unreachable: ' + message, fields);
  }
  return new StoreError('PostgreSQL error' + (code ? ' ' + code : '') + ': ' + message, fields);
}

module.exports = Object.assign({ translate, fromInfo }, CLASSES);
