'use strict';
// JSON values: copying, and the checks that keep what projections see equal
// to what PostgreSQL's jsonb can store.

var hasOwn = Object.prototype.hasOwnProperty;
var MAX_DEPTH = 512;
var MAX_ID_LENGTH = 255;
var UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
// A NUL anywhere, or a UTF-16 surrogate without its partner.
var UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function has(object, key) {
  return hasOwn.call(object, key);
}

// A map from string keys to values that is safe for any key ("__proto__",
// "constructor", ...) and serialises with JSON.stringify.
function dict() {
  return Object.create(null);
}

// A deep copy of a JSON value (what JSON.parse(JSON.stringify(v)) gives,
// without the text round trip).
function clone(value) {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    var list = new Array(value.length);
    for (var i = 0; i < value.length; i++) {
      var item = value[i];
      list[i] = item === undefined || typeof item === 'function' ? null : clone(item);
    }
    return list;
  }
  if (typeof value.toJSON === 'function') return clone(value.toJSON());
  var copy = {};
  for (var key in value) {
    var field = value[key];
    if (!hasOwn.call(value, key) || field === undefined || typeof field === 'function') continue;
    if (key === '__proto__') {
      Object.defineProperty(copy, key, { value: clone(field), enumerable: true, writable: true, configurable: true });
    } else {
      copy[key] = clone(field);
    }
  }
  return copy;
}

// `value` frozen, and everything in it.
function freezeDeep(value) {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    var keys = Object.keys(value);
    for (var i = 0; i < keys.length; i++) freezeDeep(value[keys[i]]);
  }
  return value;
}

// A deep copy of a JSON value that nothing can change.
function frozenCopy(value) {
  return freezeDeep(clone(value));
}

function typeName(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : 'a ' + typeof value;
}

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

// Why `value` cannot be stored as jsonb (NUL characters, lone surrogates,
// nesting deeper than MAX_DEPTH), or null when it can.
function unstorable(value) {
  var stack = [[value, 0, '']];
  while (stack.length) {
    var item = stack.pop();
    var v = item[0], depth = item[1], path = item[2];
    if (typeof v === 'string') {
      if (UNSTORABLE.test(v)) return 'the string at ' + (path || 'the top') + ' holds a NUL character or an unpaired surrogate, which PostgreSQL cannot store';
    } else if (typeof v === 'number') {
      if (!isFinite(v)) return 'the number at ' + (path || 'the top') + ' is not finite';
    } else if (v !== null && typeof v === 'object') {
      if (depth >= MAX_DEPTH) return 'it is nested deeper than ' + MAX_DEPTH + ' levels';
      if (Array.isArray(v)) {
        for (var i = 0; i < v.length; i++) stack.push([v[i], depth + 1, path + '[' + i + ']']);
      } else {
        for (var key in v) {
          if (!hasOwn.call(v, key)) continue;
          if (UNSTORABLE.test(key)) return 'a key at ' + (path || 'the top') + ' holds a NUL character or an unpaired surrogate, which PostgreSQL cannot store';
          stack.push([v[key], depth + 1, path + '.' + key]);
        }
      }
    }
  }
  return null;
}

// Why `id` is not a usable document or stream id, or null when it is.
function badId(id) {
  if (typeof id !== 'string') return 'must be a string, not ' + typeName(id);
  if (id.length === 0) return 'must not be empty';
  if (id.length > MAX_ID_LENGTH) return 'is longer than ' + MAX_ID_LENGTH + ' characters';
  if (UNSTORABLE.test(id)) return 'holds a NUL character or an unpaired surrogate';
  return null;
}

function isUuid(value) {
  return typeof value === 'string' && UUID.test(value);
}

jsproj.has = has;
jsproj.dict = dict;
jsproj.clone = clone;
jsproj.freezeDeep = freezeDeep;
jsproj.frozenCopy = frozenCopy;
jsproj.typeName = typeName;
jsproj.isPlainObject = isPlainObject;
jsproj.unstorable = unstorable;
jsproj.badId = badId;
jsproj.isUuid = isUuid;
