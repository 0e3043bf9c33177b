#!/usr/bin/env node
'use strict';
// node js/bin/describe.js PROJECTIONS_DIR
// Prints what every projection in the folder is: [{name, kind, lifecycle,
// file, streamType, eventTypes, anyEvent, indexes}]. On an error: {"error": {...}}
// on stdout, one line on stderr, exit code 1.

const projectorModule = require('..');

function main(argv) {
  if (argv.length !== 1 || argv[0] === '-h' || argv[0] === '--help') {
    process.stderr.write('usage: describe.js PROJECTIONS_DIR\n');
    return argv.length === 1 ? 0 : 2;
  }
  const engine = projectorModule.engine;
  const projector = projectorModule.createProjector();
  try {
    projectorModule.loadSources(projector, projectorModule.readProjectionFolder(argv[0]));
    process.stdout.write(JSON.stringify(engine.describe(projector)) + '\n');
    return 0;
  } catch (e) {
    if (!e || !e.kind) {
      process.stderr.write('error: ' + String(e && e.message || e) + '\n');
      return 1;
    }
    process.stdout.write(JSON.stringify({ error: engine.errorInfo(e) }) + '\n');
    process.stderr.write('error: ' + engine.firstLine(e.message) + '\n');
    return 1;
  }
}

process.exitCode = main(process.argv.slice(2));
