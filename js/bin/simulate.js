#!/usr/bin/env node
'use strict';
// node js/bin/simulate.js PROJECTIONS_DIR EVENTS_FILE [--page-size N] [--now ISO]
//   [--timeout S] [--memory-limit MB] [--json]
// Prints {"views": {...}, "aggregates": {...}} for every projection in the
// folder run over the events file (always JSON: --json is accepted for the
// same command line as `jsproj simulate`). On an error: {"error": {...}} on
// stdout, one line on stderr, exit code 1; a bad command line: exit code 2.
// The projections run in a context of their own, locked down as in every
// sandboxed host (../sandbox.js). --timeout limits each call (loading the
// files, then the simulation), as node:vm can; --memory-limit runs it in a
// Node with that V8 heap limit. Neither makes Node a sandbox
// (docs/sandbox.md): they stop runaway projections, they do not contain them.

const fs = require('fs');
const childProcess = require('child_process');
const projectorModule = require('..');
const { createSandbox } = require('../sandbox');

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

// Run this command again in a Node whose V8 heap is limited; its answer is ours.
function inLimitedNode(megabytes, folder) {
  const child = childProcess.spawnSync(process.execPath, ['--max-old-space-size=' + megabytes, __filename].concat(process.argv.slice(2)), {
    stdio: ['inherit', 'inherit', 'pipe'], env: Object.assign({}, process.env, { [HEAP_MARK]: String(megabytes) })
  });
  const stderr = String(child.stderr || '');
  if (child.status === 0 || child.status === 1 || child.status === 2) {
    process.stderr.write(stderr);
    return child.status;
  }
  // The child cannot say what ran: name the folder's projections (as a database host names a call's).
  const names = projectionNames(folder);
  const culprit = names.length === 1 ? 'projection ' + names[0] : names.length ? 'one of projections ' + names.join(', ') : 'projections';
  const message = culprit + ' went past the memory limit of ' + megabytes + ' MB';
  process.stdout.write(JSON.stringify({ error: { kind: 'SandboxMemoryError', message: message,
    projection: names.length === 1 ? names[0] : null } }) + '\n');
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
  if (args.memoryLimit !== undefined && process.env[HEAP_MARK] !== String(args.memoryLimit)) {
    return inLimitedNode(args.memoryLimit, args.positional[0]);
  }
  const [folder, eventsFile] = args.positional;
  let sources, text;
  try {
    sources = projectorModule.readProjectionFolder(folder);
    text = fs.readFileSync(eventsFile === '-' ? 0 : eventsFile, 'utf8');
  } catch (e) {
    process.stderr.write('error: ' + (e && e.code === 'ENOENT' ? 'no such file or folder: ' + e.path : String(e && e.message || e)) + '\n');
    return 1;
  }
  // Each call (loading the files, then the simulation) under the time limit, as in every host.
  const sandbox = createSandbox();
  const loaded = call(sandbox, 'load', JSON.stringify(sources), args.timeout);
  if (loaded.error) return fail(located(loaded.error, sources));
  const result = call(sandbox, 'simulate', JSON.stringify({ text, now: args.now, pageSize: args.pageSize }), args.timeout);
  if (result.error) return fail(result.error);
  process.stdout.write(JSON.stringify(result.ok) + '\n');
  return 0;
}

// The names of the projections of a folder ([] when it cannot be loaded).
function projectionNames(folder) {
  try {
    const loaded = JSON.parse(createSandbox().call('load', JSON.stringify(projectorModule.readProjectionFolder(folder))));
    return loaded.ok ? loaded.ok.map((info) => info.name) : [];
  } catch (e) {
    return [];
  }
}

// One sandbox call's answer ({ok} or {error}), its projections' console output printed.
function call(sandbox, op, text, seconds) {
  let answer;
  try {
    answer = JSON.parse(sandbox.call(op, text, seconds === undefined ? undefined : seconds * 1000));
  } catch (e) {
    if (!e || e.code !== 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw e;
    return { error: timedOut(sandbox.current(), seconds) };
  }
  printLogs(answer.logs || []);
  return answer;
}

// A syntax error with its line, which only the host's own compiler knows.
function located(error, sources) {
  const culprit = sources.find((s) => s.file === error.file);
  return culprit ? projectorModule.withSyntaxLine(error, culprit.file, culprit.source) : error;
}

function fail(error) {
  process.stdout.write(JSON.stringify({ error }) + '\n');
  process.stderr.write('error: ' + String(error.message).split('\n')[0] + '\n');
  return 1;
}

function timedOut(where, seconds) {
  const culprit = where.projection ? 'projection ' + where.projection : where.file ? 'projection file ' + where.file : 'projection code';
  return { kind: 'SandboxTimeoutError', message: culprit + ' ran past the time limit of ' + seconds + ' s',
    projection: where.projection || null, file: where.file || null };
}

function printLogs(logs) {
  for (const entry of logs) {
    process.stderr.write('[' + (entry.projection || entry.file || 'projections') + '] ' + entry.message + '\n');
  }
}

process.exitCode = main();
