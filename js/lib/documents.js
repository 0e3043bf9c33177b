'use strict';
// The value rule: what a document holds after each event. A handler's state
// (or a transform's view) becomes exactly what PostgreSQL's jsonb would give
// back after storing JSON.stringify of it -- undefined, functions and symbols
// dropped (null in arrays), NaN and Infinity null, -0 0, toJSON applied
// (a Date becomes its ISO text), keys in jsonb's order -- as a fresh copy
// that no projection code holds. So the next event sees the same state
// whether the document stayed in memory or went to the database and back:
// views do not depend on batching or host. What JSON cannot hold at all
// (BigInt, cycles, nesting deeper than MAX_DEPTH, text past MAX_SIZE,
// strings PostgreSQL cannot store) is refused.

var hasOwn = Object.prototype.hasOwnProperty;
var ObjectPrototype = Object.prototype;
var getPrototypeOf = Object.getPrototypeOf, objectKeys = Object.keys, defineProperty = Object.defineProperty;
var isArray = Array.isArray;
var NumberValueOf = Number.prototype.valueOf, BooleanValueOf = Boolean.prototype.valueOf;
var StringValueOf = String.prototype.valueOf, objectToString = Object.prototype.toString;

var MAX_DEPTH = 512;
// Characters of the document's JSON text: MongoDB's document limit, far
// below jsonb's 255 MB and the sandbox's memory limit.
var MAX_SIZE = 16 * 1024 * 1024;
var UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/;
var SUSPECT = /[\u0000\uD800-\uDFFF]/;
// Key lists already known to be in jsonb order, by their first key: most
// states keep their keys from one event to the next.
var shapes = new Map();
var MAX_SHAPE_KEYS = 1 << 20;   // keys held by all the shapes together (then they are forgotten)
var shapeKeys = 0;

// Whether Object.prototype has enumerable keys that for-in would list
// (checked once per document).
var inherits = false;
var EMPTY = {};
function enumerableInherited() {
  for (var key in EMPTY) return true;
  return false;
}

// A lower bound of the JSON text's length so far, how many numbers it holds
// (a number's text is 1 to 24 characters) and how many characters its
// strings and keys have (escaped, one can take 6).
var low = 0, numbers = 0, chars = 0;
// How many object keys and array items it has: what copying it costs.
var nodes = 0;

function Problem(reason, limit) {
  this.reason = reason;
  this.limit = limit === undefined ? null : limit;
  this.path = '';
}

function within(problem, step) {
  if (!(problem instanceof Problem)) {
    var thrown = jsproj.describeThrown(problem);
    problem = new Problem('a toJSON method, getter or proxy threw ' + thrown.name + ': ' + jsproj.firstLine(thrown.message));
  }
  problem.path = step + problem.path;
  return problem;
}

function pathStep(key) {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? '.' + key : '[' + JSON.stringify(key) + ']';
}

function unstorableString() {
  return new Problem('a string holds a NUL character or an unpaired surrogate, which PostgreSQL cannot store');
}

function checkString(text) {
  low += text.length + 2;
  chars += text.length;
  if (SUSPECT.test(text) && UNSTORABLE.test(text)) throw unstorableString();
  return text;
}

// The document form of any value: undefined where JSON would leave it out.
function documentValue(value, key, depth) {
  switch (typeof value) {
    case 'string': return checkString(value);
    case 'number':
      numbers += 1;
      if (value === value && value !== Infinity && value !== -Infinity) { low += 1; return value + 0; }   // -0 is 0
      low += 4;
      return null;
    case 'boolean': low += 4; return value;
    case 'object': return value === null ? (low += 4, null) : documentObject(value, key, depth);
    case 'bigint': throw new Problem('a BigInt, which JSON cannot hold');
    default: return undefined;      // undefined, a function, a symbol
  }
}

function documentObject(value, key, depth) {
  if (depth >= MAX_DEPTH) throw new Problem('it is nested deeper than ' + MAX_DEPTH + ' levels (or holds itself)', MAX_DEPTH);
  var toJSON = value.toJSON;
  if (typeof toJSON === 'function') return afterToJSON(toJSON.call(value, key), key, depth);
  if (isArray(value)) return documentArray(value, depth);
  var proto = getPrototypeOf(value);
  if (proto === ObjectPrototype || proto === null) return plainObject(value, depth);
  var boxed = unboxed(value);
  if (boxed !== value) return documentValue(boxed, key, depth);
  return keyedObject(value, objectKeys(value), depth);
}

// JSON.stringify calls toJSON once; what it returns is written as it is.
function afterToJSON(result, key, depth) {
  if (result === null || typeof result !== 'object') return documentValue(result, key, depth);
  if (isArray(result)) return documentArray(result, depth);
  var boxed = unboxed(result);
  return boxed !== result ? documentValue(boxed, key, depth) : keyedObject(result, objectKeys(result), depth);
}

// Number, String and Boolean objects stand for their primitive in JSON.
function unboxed(value) {
  switch (objectToString.call(value)) {
    case '[object Number]': try { NumberValueOf.call(value); return Number(value); } catch (e) { return value; }
    case '[object String]': try { StringValueOf.call(value); return String(value); } catch (e) { return value; }
    case '[object Boolean]': try { return BooleanValueOf.call(value); } catch (e) { return value; }
    case '[object BigInt]': throw new Problem('a BigInt, which JSON cannot hold');
    default: return value;
  }
}

function documentArray(value, depth) {
  var length = value.length;
  var copy = [];
  low += length > 0 ? length + 1 : 2;
  nodes += length;
  var i = 0;
  try {
    for (; i < length; i++) {
      var item = documentValue(value[i], String(i), depth + 1);
      copy.push(item === undefined ? (low += 4, null) : item);
      if (low > MAX_SIZE) throw tooLarge();
    }
  } catch (e) {
    throw within(e, '[' + i + ']');
  }
  return copy;
}

// An own property, as JSON.parse makes it. Assignment would run a setter for
// "__proto__", and fail for the other "__" names of Object.prototype where it
// is frozen; its other names ("constructor", "toString", ...) take an own
// property when assigned (they are accessors that allow it in sandboxes).
function setKey(copy, key, item) {
  if (key.charCodeAt(0) === 95 && key.charCodeAt(1) === 95 && hasOwn.call(ObjectPrototype, key)) {
    defineProperty(copy, key, { value: item, writable: true, enumerable: true, configurable: true });
  } else {
    copy[key] = item;
  }
}

// A plain object (its prototype Object.prototype or null): its own
// enumerable keys, by for-in -- the engine's fast path, so primitives are
// handled here -- skipping inherited keys only if Object.prototype has any
// (never in sandboxes: it is frozen without; Node code can add some).
function plainObject(value, depth) {
  var copy = {};
  var shape, count = 0, key = null, size = 0, nums = 0, text = 0;
  try {
    for (key in value) {
      if (inherits && !hasOwn.call(value, key)) continue;
      var item = value[key];
      switch (typeof item) {
        case 'number':
          nums += 1;
          if (item === item && item !== Infinity && item !== -Infinity) { size += 1; item += 0; } else { size += 4; item = null; }
          break;
        case 'string':
          size += item.length + 2;
          text += item.length;
          if (SUSPECT.test(item) && UNSTORABLE.test(item)) throw unstorableString();
          break;
        case 'boolean': size += 4; break;
        case 'object':
          if (item === null) size += 4;
          else item = documentObject(item, key, depth + 1);
          break;
        case 'bigint': throw new Problem('a BigInt, which JSON cannot hold');
        default: continue;          // undefined, a function, a symbol: left out
      }
      if (count === 0) shape = shapes.get(key);
      else if (shape !== undefined && shape[count] !== key) shape = undefined;
      setKey(copy, key, item);
      size += key.length + 3;
      text += key.length;
      count += 1;
    }
  } catch (e) {
    throw within(e, pathStep(key));
  }
  low += size;
  numbers += nums;
  chars += text;
  nodes += count;
  if (low > MAX_SIZE) throw tooLarge();
  return shape !== undefined && shape.length === count ? copy : ordered(copy);
}

// Any other object, by the keys JSON.stringify would write.
function keyedObject(value, keys, depth) {
  var copy = {};
  var key = null;
  try {
    for (var i = 0; i < keys.length; i++) {
      key = keys[i];
      var item = documentValue(value[key], key, depth + 1);
      if (item === undefined) continue;
      setKey(copy, key, item);
      low += key.length + 3;
      chars += key.length;
      nodes += 1;
    }
  } catch (e) {
    throw within(e, pathStep(key));
  }
  if (low > MAX_SIZE) throw tooLarge();
  return ordered(copy);
}

// An array index key, which every JavaScript engine lists first, in order.
function isIndex(key) {
  var c = key.charCodeAt(0);
  return c >= 48 && c <= 57 && String(key >>> 0) === key && key !== '4294967295';
}

function utf8Length(key) {
  var n = key.length;
  for (var i = 0; i < key.length; i++) {
    var c = key.charCodeAt(i);
    if (c >= 0x80) n += c < 0x800 ? 1 : c >= 0xD800 && c <= 0xDBFF ? 1 : c >= 0xDC00 && c <= 0xDFFF ? 1 : 2;
  }
  return n;
}

// UTF-16 code units reordered to compare like code points (UTF-8 bytes).
function unit(c) {
  return c >= 0xD800 && c <= 0xDFFF ? c + 0x2000 : c >= 0xE000 ? c - 0x800 : c;
}

// jsonb's key order: shorter UTF-8 first, then by bytes.
function compareKeys(a, b) {
  var la = utf8Length(a), lb = utf8Length(b);
  return la !== lb ? la - lb : compareUnits(a, b);
}

// Keys of the same UTF-8 length by their bytes.
function compareUnits(a, b) {
  for (var i = 0; i < a.length && i < b.length; i++) {
    var x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x !== y) return unit(x) - unit(y);
  }
  return a.length - b.length;
}

// The copy with its keys in jsonb's order (checked first: usually they are).
function ordered(copy) {
  var keys = objectKeys(copy);
  var named = [];
  for (var i = 0; i < keys.length; i++) {
    if (SUSPECT.test(keys[i]) && UNSTORABLE.test(keys[i])) {
      throw within(new Problem('a key holds a NUL character or an unpaired surrogate, which PostgreSQL cannot store'), pathStep(keys[i]));
    }
    if (!isIndex(keys[i])) named.push(keys[i]);
  }
  var inOrder = 1;           // how many named keys are in order from the start
  while (inOrder < named.length && compareKeys(named[inOrder - 1], named[inOrder]) < 0) inOrder++;
  var sorted = inOrder >= named.length;
  if (!sorted) copy = reordered(copy, keys, sortKeys(named, inOrder));
  if (keys.length > 0) remember(sorted ? keys : objectKeys(copy));
  return copy;
}

// Named keys in jsonb's order, the first `inOrder` of them already in order:
// usually a handler added a few keys to an ordered object, and those are
// put in place by binary search; otherwise a sort, each key measured once.
function sortKeys(named, inOrder) {
  if (named.length - inOrder <= 16) {
    var list = named.slice(0, inOrder);
    for (var i = inOrder; i < named.length; i++) {
      var low = 0, high = list.length;
      while (low < high) {
        var middle = (low + high) >>> 1;
        if (compareKeys(list[middle], named[i]) < 0) low = middle + 1;
        else high = middle;
      }
      list.splice(low, 0, named[i]);
    }
    return list;
  }
  var measured = named.map(function (key) { return { key: key, length: utf8Length(key) }; });
  measured.sort(function (a, b) { return a.length !== b.length ? a.length - b.length : compareUnits(a.key, b.key); });
  return measured.map(function (m) { return m.key; });
}

function remember(keys) {
  if (shapeKeys + keys.length > MAX_SHAPE_KEYS) {
    shapes.clear();
    shapeKeys = 0;
  }
  var old = shapes.get(keys[0]);
  shapeKeys += keys.length - (old ? old.length : 0);
  shapes.set(keys[0], keys);
}

function reordered(copy, keys, named) {
  var result = {};
  for (var i = 0; i < keys.length && isIndex(keys[i]); i++) result[keys[i]] = copy[keys[i]];
  for (var j = 0; j < named.length; j++) setKey(result, named[j], copy[named[j]]);
  return result;
}

function tooLarge() {
  return new Problem('its JSON text is longer than ' + MAX_SIZE + ' characters', MAX_SIZE);
}

// The document form of a state: a fresh copy by the value rule. Throws a
// DocumentError naming the projection, the document (documentId), the event
// (meta), the path in the document and the limit it broke.
function toDocument(value, projection, documentId, meta) {
  var document;
  try {
    document = part(value, '', 0);
    if (mayBeTooLarge(0)) checkLength(document);
  } catch (e) {
    throw documentError(e instanceof Problem ? e : within(e, ''), projection, documentId, meta);
  }
  if (document === undefined || document === null) {
    throw documentError(new Problem(document === null
      ? 'it would be null (NaN and Infinity are null in JSON): return projections.DELETE to delete a document'
      : 'it is not a JSON value (undefined, a function or a symbol)'), projection, documentId, meta);
  }
  return document;
}

// The document form of one value at `depth` (undefined where JSON would leave
// it out); measured() then tells its size. Throws Problems.
function part(value, key, depth) {
  low = 0;
  numbers = 0;
  chars = 0;
  nodes = 0;
  inherits = enumerableInherited();
  return documentValue(value, key, depth);
}

// An upper bound of the JSON text's length, from the counts: `low` counts
// every number as one character and no escapes.
function upperBound() {
  return low + 23 * numbers + 5 * chars;
}

// Whether text of `extra` more characters than the last part could break the limit.
function mayBeTooLarge(extra) {
  return upperBound() + extra > MAX_SIZE;
}

// The exact length, for a document whose bounds leave it in doubt.
function checkLength(document) {
  if (JSON.stringify(document).length > MAX_SIZE) throw tooLarge();
}

// The size of the last part: [upper bound of its text, nodes].
function measured() {
  return [upperBound(), nodes];
}

// How many nodes the last part had (no allocation: asked after every copy).
function measuredNodes() {
  return nodes;
}

function documentError(problem, projection, documentId, meta) {
  var path = problem.path;
  var at = path ? ' at ' + (path.length > 100 ? path.slice(0, 97) + '...' : path) : '';
  var eventPart = meta.eventType ? ' on ' + meta.eventType + ' event' + (meta.eventId ? ' ' + meta.eventId : '') +
    (meta.position !== null && meta.position !== undefined ? ' (position ' + meta.position + ')' : '') : '';
  return jsproj.fail('DocumentError', 'projection ' + projection + ' made document ' + JSON.stringify(documentId) +
    eventPart + ' that cannot be stored: ' + problem.reason + at, {
    projection: projection,
    documentId: documentId,
    eventId: meta.eventId === undefined ? null : meta.eventId,
    eventType: meta.eventType === undefined ? null : meta.eventType,
    position: meta.position === undefined ? null : meta.position,
    path: path || null,
    limit: problem.limit
  });
}

jsproj.MAX_DOCUMENT_DEPTH = MAX_DEPTH;
jsproj.MAX_DOCUMENT_SIZE = MAX_SIZE;
jsproj.toDocument = toDocument;
jsproj.compareKeys = compareKeys;
jsproj.documentPart = part;
jsproj.documentMeasured = measured;
jsproj.documentNodes = measuredNodes;
jsproj.documentMayBeTooLarge = function () { return mayBeTooLarge(0); };
jsproj.documentError = documentError;
jsproj.DocumentProblem = Problem;
jsproj.documentWithin = within;
jsproj.documentPathStep = pathStep;
jsproj.isIndexKey = isIndex;
jsproj.sortKeys = sortKeys;
jsproj.unstorableKey = function (key) { return SUSPECT.test(key) && UNSTORABLE.test(key); };
