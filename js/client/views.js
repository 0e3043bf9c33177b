'use strict';
// Reading the documents of deployed projections by id or by field: Python's
// jsproj.views.View (src/jsproj/projections/views.py, docs/views.md), the
// same queries. A `where` maps document fields to what they must hold:
// containment ({location: 'Moria'}; a dotted key is a nested field), or
// comparisons ({size: {$gt: 3}}: $eq $ne $gt $gte $lt $lte $in). Fields are
// checked (dotted paths of names) and written as SQL literals, as Python
// does, so that the indexes jsproj declares serve them; values are always
// parameters.

const { isDeepStrictEqual } = require('util');
const errors = require('./errors');

const SEGMENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_SEGMENTS = 16;
const MAX_FIELD = 200;
const COMPARISONS = { $eq: '=', $ne: '<>', $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' };
const OPERATORS = Object.keys(COMPARISONS).concat(['$in']);
const FIND_OPTIONS = ['orderBy', 'limit', 'after'];

const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);
const quoted = (name) => '"' + name.replace(/"/g, '""') + '"';

// The segments of a dotted field name, checked: 'party.leader' is ['party', 'leader'].
function fieldPath(key) {
  if (typeof key !== 'string' || key.length > MAX_FIELD) {
    throw new errors.InvalidFieldError(`a field is a dotted name of at most ${MAX_FIELD} characters, not ${JSON.stringify(key)}`, { field: key });
  }
  const path = key.split('.');
  if (path.length > MAX_SEGMENTS || !path.every((segment) => SEGMENT.test(segment))) {
    throw new errors.InvalidFieldError(`field '${key}' is not a dotted path of names (letters, digits and _, not starting ` +
      `with a digit; at most ${MAX_SEGMENTS} segments)`, { field: key });
  }
  return path;
}

// A field's jsonb value, null when missing: the expression of the indexes jsproj declares (pge_sync_indexes).
function keyExpression(path) {
  return `coalesce(data #> '{${path.join(',')}}'::text[], 'null'::jsonb)`;
}

// Whether `value` is JSON as it is: finite numbers, strings, booleans, null, arrays and plain objects of them.
function isJson(value) {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(isJson);
  const plain = isObject(value) && [Object.prototype, null].includes(Object.getPrototypeOf(value));
  return plain && Object.values(value).every(isJson);
}

// The values of a query, as $n placeholders.
class Params {
  constructor() { this.values = []; }
  add(value) { this.values.push(value); return '$' + this.values.length; }
  json(value, key) {
    if (!isJson(value)) throw new errors.QueryError(`where '${key}': the value is not JSON`, { field: key });
    return this.add(JSON.stringify(value)) + '::jsonb';
  }
}

function nested(path, value) {
  return path.slice().reverse().reduce((inner, segment) => ({ [segment]: inner }), value);
}

// Two containment objects as one; a field given twice with other values is refused.
function merge(into, extra, key) {
  const merged = Object.assign({}, into);
  for (const [name, value] of Object.entries(extra)) {
    if (isObject(merged[name]) && isObject(value)) merged[name] = merge(merged[name], value, key);
    else if (name in merged && !isDeepStrictEqual(merged[name], value)) {
      throw new errors.QueryError(`where '${key}': the field is given twice with different values`, { field: key });
    } else merged[name] = value;
  }
  return merged;
}

// Whether a where value is a comparison ({$gt: 3}) rather than a value to contain.
function isOperators(value, key) {
  if (!isObject(value) || !Object.keys(value).some((k) => k.startsWith('$'))) return false;
  const unknown = Object.keys(value).filter((k) => !OPERATORS.includes(k)).sort();
  if (unknown.length) {
    throw new errors.QueryError(`where '${key}': unknown operator '${unknown[0]}' (known: ${OPERATORS.join(', ')}; ` +
      'a value to contain has no $ keys)', { field: key });
  }
  return true;
}

function comparison(path, key, operator, operand, params) {
  const expression = keyExpression(path);
  if (operator === '$in') {
    if (!Array.isArray(operand)) throw new errors.QueryError(`where '${key}': $in takes a list of values`, { field: key });
    if (!operand.every(isJson)) throw new errors.QueryError(`where '${key}': a value of $in is not JSON`, { field: key });
    return `${expression} = any(${params.add(operand.map((item) => JSON.stringify(item)))}::jsonb[])`;
  }
  if (operator === '$eq' || operator === '$ne') return `${expression} ${COMPARISONS[operator]} ${params.json(operand, key)}`;
  if (!(typeof operand === 'string' || (typeof operand === 'number' && Number.isFinite(operand)))) {
    throw new errors.QueryError(`where '${key}': ${operator} takes a number or a string, not ${JSON.stringify(operand)}`, { field: key });
  }
  const typed = typeof operand === 'string' ? 'string' : 'number';  // jsonb orders types apart: compare within one
  return `${expression} ${COMPARISONS[operator]} ${params.json(operand, key)} and jsonb_typeof(${expression}) = ${params.add(typed)}`;
}

// The condition of `where` ('true' when empty), its values added to `params`.
function whereClause(where, params) {
  if (where === null || where === undefined) return 'true';
  if (!isObject(where)) throw new errors.QueryError('where is an object of fields to values, not ' + JSON.stringify(where));
  let contained = null;
  const conditions = [];
  for (const [key, value] of Object.entries(where)) {
    const path = fieldPath(key);
    if (isOperators(value, key)) {
      Object.entries(value).forEach(([operator, operand]) => conditions.push(comparison(path, key, operator, operand, params)));
      continue;
    }
    if (!isJson(value)) throw new errors.QueryError(`where '${key}': the value is not JSON`, { field: key });
    contained = merge(contained || {}, nested(path, value), key);
    if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) {
      // A scalar contained in a field is that field's value: said again as an equality, so that a declared index serves it.
      conditions.push(`${keyExpression(path)} = ${params.json(value, key)}`);
    }
  }
  if (contained) conditions.unshift(`data @> ${params.json(contained, '')}`);
  return conditions.length ? conditions.join(' and ') : 'true';
}

// The expression to order by (id, or a field's value) and whether it is descending.
function orderOf(orderBy) {
  if (orderBy === undefined || orderBy === null) return { key: 'id', byId: true, descending: false };
  if (typeof orderBy !== 'string') throw new errors.QueryError('orderBy is a field name (or -name for descending), not ' + JSON.stringify(orderBy));
  const descending = orderBy.startsWith('-');
  const name = descending ? orderBy.slice(1) : orderBy;
  if (name === 'id') return { key: 'id', byId: true, descending };
  try {
    return { key: keyExpression(fieldPath(name)), byId: false, descending };
  } catch (e) {
    e.message = 'orderBy: ' + e.message;
    throw e;
  }
}

function checkFindOptions(options) {
  const unknown = Object.keys(options).filter((key) => !FIND_OPTIONS.includes(key));
  if (unknown.length) throw new errors.QueryError(`find(where, {${FIND_OPTIONS.join(', ')}}) has no option ${unknown[0]}`);
  const { limit, after } = options;
  if (limit !== undefined && limit !== null && !(Number.isSafeInteger(limit) && limit >= 0)) {
    throw new errors.QueryError('limit is a number of documents (0 or more), not ' + JSON.stringify(limit));
  }
  if (after !== undefined && after !== null && typeof after !== 'string') {
    throw new errors.QueryError('after is a document id, not ' + JSON.stringify(after));
  }
}

// `select id, data` of the documents of `table` (quoted, qualified) that match `where`, in order, paged by keyset.
function findQuery(table, where, options) {
  checkFindOptions(options);
  const params = new Params();
  const condition = whereClause(where, params);
  const { key, byId, descending } = orderOf(options.orderBy);
  const direction = descending ? 'desc' : 'asc';
  const order = byId ? `id ${direction}` : `${key} ${direction}, id ${direction}`;
  let beyond = '';
  if (options.after !== undefined && options.after !== null) {
    const compare = descending ? '<' : '>';
    const after = params.add(options.after);
    beyond = byId ? ` and id ${compare} ${after}` : ` and (${key}, id) ${compare} (select ${key}, id from ${table} where id = ${after})`;
  }
  let text = `select id, data from ${table} where ${condition}${beyond} order by ${order}`;
  if (options.limit !== undefined && options.limit !== null) text += ' limit ' + params.add(options.limit);
  return { text, values: params.values };
}

function countQuery(table, where) {
  const params = new Params();
  return { text: `select count(*)::float8 as n from ${table} where ${whereClause(where, params)}`, values: params.values };
}

// The documents of one deployed projection, read by id or queried by field: store.views(name).
class View {
  constructor(store, name) {
    if (typeof name !== 'string') throw new errors.InputError('views(name): a projection name is a string, not ' + typeof name);
    this.store = store;
    this.name = name;
  }

  // Its kind and document table (quoted, qualified); an unknown or live projection is an error.
  async definition() {
    const rows = await this.store.query(`select kind, lifecycle, ${this.store.sql}.pge_document_table(name) as document_table
      from ${this.store.sql}.pge_projection_definitions where name = $1`, [this.name]);
    if (rows.length === 0) {
      throw new errors.UnknownProjectionError(`there is no deployed projection '${this.name}'`, { projection: this.name });
    }
    const { kind, lifecycle } = rows[0];
    if (lifecycle === 'live') {
      throw new errors.ProjectionError(`${this.name} is a live projection: nothing is stored; fold a stream with ` +
        `store.live('${this.name}', streamId)`, { projection: this.name });
    }
    return { kind, table: this.store.sql + '.' + quoted(rows[0].document_table) };
  }

  // The table find and count query: an aggregate (one document) is a QueryError.
  async queryable() {
    const { kind, table } = await this.definition();
    if (kind === 'aggregate') {
      throw new errors.QueryError(`${this.name} is an aggregate: it has one document, read it with get('${this.name}')`,
        { projection: this.name });
    }
    return table;
  }

  // The document `id` (an aggregate's one document has the aggregate's name as id); UnknownDocumentError if none.
  async get(id) {
    const { kind, table } = await this.definition();
    const rows = await this.store.query(`select data from ${table} where ${kind === 'aggregate' ? 'name' : 'id'} = $1`, [String(id)]);
    if (rows.length === 0) {
      throw new errors.UnknownDocumentError(`projection ${this.name} has no document '${id}'`, { projection: this.name, id: String(id) });
    }
    return rows[0].data;
  }

  // The documents that match `where` (all when none), as [{id, data}], ordered by `orderBy` (a dotted field, -field
  // descending, or id: the default), ties by id; at most `limit`, after the document `after` (the last id of the
  // previous page: an UnknownDocumentError if it is gone).
  async find(where, options = {}) {
    const table = await this.queryable();
    const query = findQuery(table, where, options || {});
    const rows = await this.store.query(query.text, query.values);
    const { after, orderBy } = options || {};
    if (!rows.length && after !== undefined && after !== null && !['id', '-id', undefined, null].includes(orderBy)) {
      const found = await this.store.query(`select 1 from ${table} where id = $1`, [after]);
      if (!found.length) {
        throw new errors.UnknownDocumentError(`after: projection ${this.name} has no document '${after}'`, { projection: this.name, id: after });
      }
    }
    return rows.map((row) => ({ id: row.id, data: row.data }));
  }

  // How many documents match `where` (all when none).
  async count(where) {
    const query = countQuery(await this.queryable(), where);
    return (await this.store.query(query.text, query.values))[0].n;
  }
}

module.exports = { View, findQuery, countQuery, whereClause, fieldPath };
