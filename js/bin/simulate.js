#!/usr/bin/env node
'use strict';
// node js/bin/simulate.js PROJECTIONS_DIR EVENTS_FILE [--page-size N] [--now ISO]
//   [--timeout S] [--memory-limit MB] [--json]
// Prints {"views": {...}, "aggregates": {...}} for every projection in the
// folder run over the events file (always JSON: --json is accepted for the
// same command line as `jsproj simulate`). On an error: {"error": {...}} on
// stdout, one line on stderr, exit code 1; a bad command line: exit code 2.
// --timeout limits the whole run (Node's vm timeout); --memory-limit runs it
// in a Node with that V8 heap limit. Neither makes Node a sandbox
// (docs/sandbox.md): they stop runaway projections, they do not contain them.

const fs = require('fs');
const vm = require('vm');
const childProcess = require('child_process');
const projectorModule = require('..');

const USAGE = 'usage: simulate.js PROJECTIONS_DIR EVENTS_FILE|- [--page-size N] [--now ISO-TIMESTAMP] ' +
  '[--timeout SECONDS] [--memory-limit MB] [--json]';
// The option, what its value must be, and how to check it.
const OPTIONS = {
  '--page-size': { key: 'pageSize', what: 'a whole number > 0', ok: (n) => Number.isInteger(n) && n > 0 },
  '--timeout': { key: 'timeout', what: 'a number of seconds > 0', ok: (n) => Number.isFinite(n) && n > 0 },
  '--memory-limit': { key: 'memoryLimit', what: 'a whole number of MB >= 16', ok: (n) => Number.isInteger(n) && n >= 16 }
};
const HEAP_MARK = 'JSPROJ_SIMULATE_HEAP_MB';

function parseArgs(argv) {
  const args = { positional: [], now: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const option = OPTIONS[arg];
    if (option) {
      const value = argv[++i] === undefined ? NaN : Number(argv[i]);
      if (!option.ok(value)) throw new Error(arg + ' must be ' + option.what + ', not ' + JSON.stringify(argv[i] === undefined ? '' : argv[i]));
      args[option.key] = value;
    } else if (arg === '--now') {
      if (argv[++i] === undefined) throw new Error('--now needs an ISO timestamp');
      args.now = argv[i];
    } else if (arg === '--json') {
      args.json = true;
    } else if (arg === '-h' || arg === '--help') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    } else if (arg.startsWith('--') && arg !== '-') {
      throw new Error('unknown option ' + arg + '\n' + USAGE);
    } else {
      args.positional.push(arg);
    }
  }
  if (args.positional.length !== 2) throw new Error(USAGE);
  return args;
}

// Run `fn` under the time limit (vm's timeout interrupts synchronous code).
function withinTime(seconds, fn) {
  if (seconds === undefined) return fn();
  globalThis.__jsprojSimulateRun = fn;
  try {
    return new vm.Script('__jsprojSimulateRun()').runInThisContext({ timeout: Math.max(1, Math.round(seconds * 1000)) });
  } finally {
    delete globalThis.__jsprojSimulateRun;
  }
}

// Run this command again in a Node whose V8 heap is limited; its answer is ours.
function inLimitedNode(megabytes) {
  const child = childProcess.spawnSync(process.execPath, ['--max-old-space-size=' + megabytes, __filename].concat(process.argv.slice(2)), {
    stdio: ['inherit', 'inherit', 'pipe'], env: Object.assign({}, process.env, { [HEAP_MARK]: String(megabytes) })
  });
  const stderr = String(child.stderr || '');
  if (child.status === 0 || child.status === 1 || child.status === 2) {
    process.stderr.write(stderr);
    return child.status;
  }
  const message = 'projections went past the memory limit of ' + megabytes + ' MB';
  process.stdout.write(JSON.stringify({ error: { kind: 'SandboxMemoryError', message: message } }) + '\n');
  process.stderr.write('error: ' + message + '\n');
  return 1;
}

function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write('error: ' + e.message + '\n');
    return 2;
  }
  if (args.memoryLimit !== undefined && process.env[HEAP_MARK] !== String(args.memoryLimit)) return inLimitedNode(args.memoryLimit);
  const [folder, eventsFile] = args.positional;
  const engine = projectorModule.engine;
  const projector = projectorModule.createProjector();
  try {
    const sources = projectorModule.readProjectionFolder(folder);
    const text = fs.readFileSync(eventsFile === '-' ? 0 : eventsFile, 'utf8');
    projectorModule.loadSources(projector, sources);
    const records = engine.normalize(engine.parseEvents(text), { now: args.now });
    const result = withinTime(args.timeout, () => engine.simulate(projector, records, { pageSize: args.pageSize }));
    printLogs(engine.drainLogs());
    process.stdout.write(JSON.stringify(result) + '\n');
    return 0;
  } catch (caught) {
    printLogs(engine.drainLogs());
    const e = caught && caught.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT' ? timedOut(engine, args.timeout) : caught;
    if (!e || !e.kind) {
      process.stderr.write('error: ' + (e && e.code === 'ENOENT' ? 'no such file or folder: ' + e.path : String(e && e.message || e)) + '\n');
      return 1;
    }
    process.stdout.write(JSON.stringify({ error: engine.errorInfo(e) }) + '\n');
    process.stderr.write('error: ' + engine.firstLine(e.message) + '\n');
    return 1;
  }
}

function timedOut(engine, seconds) {
  const projection = engine.current.projection;
  return engine.fail('SandboxTimeoutError', (projection ? 'projection ' + projection : 'projection code') +
    ' ran past the time limit of ' + seconds + ' s', { projection: projection || null });
}

function printLogs(logs) {
  for (const entry of logs) {
    process.stderr.write('[' + (entry.projection || entry.file || 'projections') + '] ' + entry.message + '\n');
  }
}

process.exitCode = main();
