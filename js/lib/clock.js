'use strict';
// Deterministic time and randomness for projection code: inside a handler,
// transform or identifiedBy, Date.now() and new Date() are the event's
// timestamp, and Math.random() is a PRNG seeded from the event's id and the
// projection's name, restarted for every call. A rebuild then reproduces
// the first run bit for bit. Outside such a call (while a file loads) the
// clock and the PRNG throw: nothing there may depend on when or where the
// file was loaded. Projection files get these as `Date` and `Math`; the
// sandboxed hosts also put them in place of the globals (lockdown.js).

var realm = jsproj.realm;
var RealDate = realm.Date;
var realParse = RealDate.parse;
// What is running now: read by the clock, and by a host after a time or
// memory limit stops a call. One per context (realm.js), cleared by every entry.
var current = realm.current;

function unavailable(what) {
  return new Error(what + ' is not available while a projection file loads: inside a handler, transform or ' +
    'identifiedBy the clock is the event\'s timestamp and Math.random() is seeded from the event');
}

// The event's timestamp in milliseconds.
var lastText = null, lastTime = NaN;
function now(what) {
  var meta = current.meta;
  if (meta === null) throw unavailable(what);
  if (meta.timestamp !== lastText) {
    lastTime = meta.timestamp === null ? NaN : realParse(meta.timestamp);
    lastText = meta.timestamp;
  }
  if (lastTime !== lastTime) {
    throw new Error(what + ': this event has no timestamp (use processEvent or a stored event, not applyEvent)');
  }
  return lastTime;
}

// Text as a date, alike in every host: the engines agree on the date-time
// format but for two things QuickJS reads otherwise (lower-case t and z,
// which V8 reads; an offset of hours alone, +01, which V8 refuses).
var ISO = /^([+-]\d{6}|\d{4})(-\d\d(-\d\d)?)?(?:[Tt ](\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?)([Zz]|[+-]\d\d(?::?\d\d)?)?)?$/;
function parseText(text) {
  text = String(text);
  var iso = ISO.exec(text.trim());
  if (iso === null) return realParse(text);
  if (iso[5] !== undefined && /^[+-]\d\d$/.test(iso[5])) return NaN;
  return realParse(text.trim().replace(/t/, 'T').replace(/z$/, 'Z'));
}

// new Date() is the event's time; new Date(anything) is that date.
function ClockDate() {
  var args = Array.prototype.slice.call(arguments);
  if (new.target === undefined) return new RealDate(now('Date()')).toString();
  if (args.length === 0) args = [now('new Date()')];
  else if (args.length === 1 && typeof args[0] === 'string') args = [parseText(args[0])];
  return Reflect.construct(RealDate, args, new.target === ClockDate ? RealDate : new.target);
}
ClockDate.prototype = RealDate.prototype;
ClockDate.now = function now_() { return now('Date.now()'); };
ClockDate.parse = function parse(text) { return parseText(text); };
ClockDate.UTC = function UTC() { return RealDate.UTC.apply(undefined, arguments); };
Object.defineProperty(ClockDate, 'name', { value: 'Date' });
Object.defineProperty(ClockDate, 'length', { value: 7 });
// Every file of every host gets these same objects: frozen, with their own
// functions, so that nothing written on them reaches another projection
// (without freezing the host's Date and Math in Node).
[ClockDate.now, ClockDate.parse, ClockDate.UTC, ClockDate].forEach(Object.freeze);

// cyrb128: a 128-bit hash of the seed text, then sfc32 (both public domain,
// integer arithmetic only: the same numbers in every JavaScript engine).
function seedState(text) {
  var h1 = 1779033703, h2 = 3144134277, h3 = 1013904242, h4 = 2773480762;
  for (var i = 0; i < text.length; i++) {
    var k = text.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= (h2 ^ h3 ^ h4); h2 ^= h1; h3 ^= h1; h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

function next32(s) {
  var t = (((s[0] + s[1]) >>> 0) + s[3]) >>> 0;
  s[3] = (s[3] + 1) >>> 0;
  s[0] = s[1] ^ (s[1] >>> 9);
  s[1] = (s[2] + (s[2] << 3)) >>> 0;
  s[2] = (s[2] << 21) | (s[2] >>> 11);
  s[2] = (s[2] + t) >>> 0;
  return t;
}

// The seed of the running call: the event's id and the projection's name
// (for an upcaster, its label: "QuestStarted from version 1", never a projection's name).
function seedText(meta, projection) {
  var id = meta.eventId !== null ? meta.eventId : String(meta.streamId) + '/' + String(meta.version);
  return id + '\u0000' + (projection || '');
}

// A double in [0, 1) with 53 random bits, like Math.random().
function random() {
  var meta = current.meta;
  if (meta === null) throw unavailable('Math.random()');
  var s = current.random;
  if (s === null) s = current.random = seedState(seedText(meta, current.projection || current.upcaster));
  var high = next32(s) >>> 5, low = next32(s) >>> 6;
  return (high * 67108864 + low) / 9007199254740992;
}

// Math as projection files see it: a frozen copy of the real one's pinned
// properties (surface.js) with a seeded random(); the real one stays the
// host's in Node's own context.
var ClockMath = {};
Reflect.ownKeys(Math).sort(jsproj.surfaceKeyOrder).forEach(function (key) {
  if (key === 'random' || jsproj.PINNED_SURFACE.Math.indexOf(jsproj.surfaceKeyName(key)) < 0) return;
  Object.defineProperty(ClockMath, key, Object.getOwnPropertyDescriptor(Math, key));
});
Object.defineProperty(ClockMath, 'random', {
  value: { random() { return random(); } }.random, writable: false, enumerable: false, configurable: false
});
Object.freeze(ClockMath);

// RegExp's legacy statics (RegExp.$1, lastMatch, input, ...) keep the last
// match of whatever code ran: a successful empty match clears them before
// projection code runs, so that none reads another projection's data.
var EMPTY_MATCH = /(?:)/;
function clearRegExpStatics() {
  EMPTY_MATCH.exec('');
}

// Mark the start of a call of projection code for an event (meta) of a
// projection, or of an upcaster (upcast.js: projection null, its label).
function enter(meta, projection, upcaster) {
  clearRegExpStatics();
  current.meta = meta;
  current.projection = projection;
  current.upcaster = upcaster || null;
  current.random = null;
}

function leave() {
  current.meta = null;
  current.projection = null;
  current.upcaster = null;
  current.random = null;
}

// Every engine of a context uses the first one's Date and Math: the sandboxed
// hosts put them in place of the globals, so that `new Date(0).constructor`
// is the same clock in every store of the context, reading the one record
// of what is running.
if (!realm.clock) realm.clock = { ClockDate: ClockDate, ClockMath: ClockMath, random: random };

// Nothing of an earlier call: no event, no projection, no file (every entry calls this first).
function reset() {
  leave();
  current.file = null;
}

jsproj.RealDate = RealDate;
jsproj.ClockDate = realm.clock.ClockDate;
jsproj.ClockMath = realm.clock.ClockMath;
jsproj.clockRandom = realm.clock.random;
jsproj.clearRegExpStatics = clearRegExpStatics;
jsproj.current = current;
jsproj.enter = enter;
jsproj.leave = leave;
jsproj.resetCurrent = reset;
