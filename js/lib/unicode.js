'use strict';
// jsproj's String.prototype.normalize and localeCompare, the same in every
// host: the hosts' own follow each one's Unicode and ICU data (V8 with ICU
// 72 to 78, QuickJS with its own tables, none in PL/JS 1.0.5, where both
// crash the backend), so these are plain JavaScript over the tables of
// unicode-data.js (one Unicode version: tests/pin_unicode.py). The sandboxed
// hosts put them in place of the built-ins at the lockdown (lockdown.js).
//
// normalize(form) is Unicode's normalization (UAX #15): NFC, NFD, NFKC, NFKD.
// localeCompare(that) is jsproj's order, whatever locale is asked for:
// first the letters and digits without accents or case (code point order of
// the lowercase, accents removed), then the accents, then the case (lower
// before upper), then the code units of their NFD; 0 only for canonically
// equivalent strings. It is not a
// language's collation (ICU's): sort names for display outside projections.

var TABLES = null;
var S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7, L_COUNT = 19, V_COUNT = 21, T_COUNT = 28;
var N_COUNT = V_COUNT * T_COUNT, S_COUNT = L_COUNT * N_COUNT;
var FORMS = ['NFC', 'NFD', 'NFKC', 'NFKD'];
var ASCII = /^[\u0000-\u007f]*$/;

function decodeTable(text) {
  var table = new Map(), cp = 0;
  text.split(',').forEach(function (entry) {
    var colon = entry.indexOf(':');
    cp += parseInt(entry.slice(0, colon), 16);
    table.set(cp, entry.slice(colon + 1).split(' ').map(function (hex) { return parseInt(hex, 16); }));
  });
  return table;
}

// The tables, decoded on first use (most calls never need them: ASCII text is its own normal form).
function tables() {
  if (TABLES !== null) return TABLES;
  var data = jsproj.UNICODE_DATA, composed = new Map();
  decodeTable(data.composites).forEach(function (pair, cp) { composed.set(pair[0] * 0x110000 + pair[1], cp); });
  TABLES = {
    canonical: decodeTable(data.canonical),
    compatibility: decodeTable(data.compatibility),
    combining: decodeTable(data.combining),
    lower: decodeTable(data.lower),
    composed: composed
  };
  return TABLES;
}

function combiningClass(cp) {
  var found = tables().combining.get(cp);
  return found === undefined ? 0 : found[0];
}

function codePoints(text) {
  var out = [];
  for (var i = 0; i < text.length; i++) {
    var c = text.charCodeAt(i);
    if (c >= 0xD800 && c <= 0xDBFF && i + 1 < text.length) {
      var d = text.charCodeAt(i + 1);
      if (d >= 0xDC00 && d <= 0xDFFF) { out.push((c - 0xD800) * 0x400 + d - 0xDC00 + 0x10000); i++; continue; }
    }
    out.push(c);
  }
  return out;
}

function fromCodePoints(cps) {
  var out = '';
  for (var i = 0; i < cps.length; i += 4096) out += String.fromCodePoint.apply(null, cps.slice(i, i + 4096));
  return out;
}

function decomposeInto(cp, compatible, out) {
  if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
    var s = cp - S_BASE;
    out.push(L_BASE + Math.floor(s / N_COUNT), V_BASE + Math.floor((s % N_COUNT) / T_COUNT));
    if (s % T_COUNT) out.push(T_BASE + s % T_COUNT);
    return;
  }
  var t = tables(), mapping = t.canonical.get(cp) || (compatible ? t.compatibility.get(cp) : undefined);
  if (mapping === undefined) { out.push(cp); return; }
  for (var i = 0; i < mapping.length; i++) decomposeInto(mapping[i], compatible, out);
}

// Full decomposition, then the canonical order: each run of non-starters sorted by combining class, stably.
function decompose(cps, compatible) {
  var out = [];
  for (var i = 0; i < cps.length; i++) decomposeInto(cps[i], compatible, out);
  for (var j = 1; j < out.length; j++) {
    var cc = combiningClass(out[j]);
    if (cc === 0) continue;
    for (var k = j; k > 0; k--) {
      var before = combiningClass(out[k - 1]);
      if (before === 0 || before <= cc) break;
      var swap = out[k]; out[k] = out[k - 1]; out[k - 1] = swap;
    }
  }
  return out;
}

function composePair(first, second) {
  var l = first - L_BASE, v = second - V_BASE;
  if (l >= 0 && l < L_COUNT && v >= 0 && v < V_COUNT) return S_BASE + (l * V_COUNT + v) * T_COUNT;
  var s = first - S_BASE, t = second - T_BASE;
  if (s >= 0 && s < S_COUNT && s % T_COUNT === 0 && t > 0 && t < T_COUNT) return first + t;
  var found = tables().composed.get(first * 0x110000 + second);
  return found === undefined ? null : found;
}

// Canonical composition: each character joins the last starter unless a
// character between them blocks it (a starter, or one of the same or a
// higher combining class). `between`: the class of the last character kept
// after the starter, -1 when none is.
function compose(cps) {
  var out = [], starter = -1, between = -1;
  for (var i = 0; i < cps.length; i++) {
    var cp = cps[i], cc = combiningClass(cp);
    var joined = starter >= 0 && (between === -1 || (between !== 0 && between < cc)) ? composePair(out[starter], cp) : null;
    if (joined !== null) { out[starter] = joined; continue; }
    if (cc === 0) { starter = out.length; between = -1; } else if (starter >= 0) between = cc;
    out.push(cp);
  }
  return out;
}

function normalize(form) {
  if (this === null || this === undefined) throw new TypeError('String.prototype.normalize called on null or undefined');
  var text = String(this);
  var chosen = form === undefined ? 'NFC' : String(form);
  if (FORMS.indexOf(chosen) < 0) throw new RangeError('The normalization form should be one of NFC, NFD, NFKC, NFKD.');
  if (ASCII.test(text)) return text;
  var cps = decompose(codePoints(text), chosen === 'NFKC' || chosen === 'NFKD');
  return fromCodePoints(chosen === 'NFC' || chosen === 'NFKC' ? compose(cps) : cps);
}

function lowerOf(cp) {
  if (cp < 0x80) return cp >= 0x41 && cp <= 0x5A ? cp + 32 : cp;
  var found = tables().lower.get(cp);
  return found === undefined ? cp : found[0];
}

// The keys of jsproj's order: [base characters lowercased, accents, case].
function collationKeys(text) {
  var cps = decompose(codePoints(text), false), bases = [], marks = [], cases = [];
  for (var i = 0; i < cps.length; i++) {
    if (combiningClass(cps[i]) !== 0) { marks.push(bases.length, cps[i]); continue; }
    var lower = lowerOf(cps[i]);
    bases.push(lower);
    cases.push(lower === cps[i] ? 0 : 1);
  }
  return [bases, marks, cases];
}

function compareLists(a, b) {
  var n = Math.min(a.length, b.length);
  for (var i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

function localeCompare(that) {
  if (this === null || this === undefined) throw new TypeError('String.prototype.localeCompare called on null or undefined');
  var a = String(this), b = String(that);
  if (a === b) return 0;
  var ka = collationKeys(a), kb = collationKeys(b);
  for (var level = 0; level < 3; level++) {
    var order = compareLists(ka[level], kb[level]);
    if (order !== 0) return order;
  }
  var da = normalize.call(a, 'NFD'), db = normalize.call(b, 'NFD');   // 0 for canonically equivalent strings
  return da === db ? 0 : da < db ? -1 : 1;
}

jsproj.unicodeNormalize = normalize;
jsproj.unicodeLocaleCompare = localeCompare;
