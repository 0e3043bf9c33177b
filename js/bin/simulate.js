#!/usr/bin/env node
'use strict';
// node js/bin/simulate.js PROJECTIONS_DIR EVENTS_FILE [--page-size N] [--now ISO]
// Prints {"views": {...}, "aggregates": {...}} for every projection in the
// folder run over the events file. On an error: {"error": {...}} on stdout,
// one line on stderr, exit code 1.

const fs = require('fs');
const projectorModule = require('..');

const USAGE = 'usage: simulate.js PROJECTIONS_DIR EVENTS_FILE|- [--page-size N] [--now ISO-TIMESTAMP]';

function parseArgs(argv) {
  const args = { positional: [], pageSize: undefined, now: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--page-size') args.pageSize = Number(argv[++i]);
    else if (arg === '--now') args.now = argv[++i];
    else if (arg === '-h' || arg === '--help') { process.stdout.write(USAGE + '\n'); process.exit(0); }
    else args.positional.push(arg);
  }
  if (args.positional.length !== 2) throw new Error(USAGE);
  if (args.pageSize !== undefined && !(Number.isInteger(args.pageSize) && args.pageSize > 0)) {
    throw new Error('--page-size must be a whole number > 0');
  }
  return args;
}

function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write('error: ' + e.message + '\n');
    return 2;
  }
  const [folder, eventsFile] = args.positional;
  const engine = projectorModule.engine;
  const projector = projectorModule.createProjector();
  try {
    const sources = projectorModule.readProjectionFolder(folder);
    const text = fs.readFileSync(eventsFile === '-' ? 0 : eventsFile, 'utf8');
    projectorModule.loadSources(projector, sources);
    const records = engine.normalize(engine.parseEvents(text), { now: args.now });
    const result = engine.simulate(projector, records, { pageSize: args.pageSize });
    printLogs(engine.drainLogs());
    process.stdout.write(JSON.stringify(result) + '\n');
    return 0;
  } catch (e) {
    printLogs(engine.drainLogs());
    if (!e || !e.kind) {
      process.stderr.write('error: ' + (e && e.code === 'ENOENT' ? 'no such file or folder: ' + e.path : String(e && e.message || e)) + '\n');
      return 1;
    }
    process.stdout.write(JSON.stringify({ error: engine.errorInfo(e) }) + '\n');
    process.stderr.write('error: ' + engine.firstLine(e.message) + '\n');
    return 1;
  }
}

function printLogs(logs) {
  for (const entry of logs) {
    process.stderr.write('[' + (entry.projection || entry.file || 'projections') + '] ' + entry.message + '\n');
  }
}

process.exitCode = main();
