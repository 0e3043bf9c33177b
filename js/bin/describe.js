#!/usr/bin/env node
'use strict';
// node js/bin/describe.js PROJECTIONS_DIR
// Prints what every projection in the folder is: [{name, kind, lifecycle,
// file, streamType, eventTypes, anyEvent, indexes}]. On an error: {"error": {...}}
// on stdout, one line on stderr, exit code 1. The files load as in every
// sandboxed host (../sandbox.js).

const projectorModule = require('..');
const { createSandbox } = require('../sandbox');

function main(argv) {
  if (argv.length !== 1 || argv[0] === '-h' || argv[0] === '--help') {
    process.stderr.write('usage: describe.js PROJECTIONS_DIR\n');
    return argv.length === 1 ? 0 : 2;
  }
  let sources;
  try {
    sources = projectorModule.readProjectionFolder(argv[0]);
  } catch (e) {
    process.stderr.write('error: ' + String(e && e.message || e) + '\n');
    return 1;
  }
  const answer = JSON.parse(createSandbox().call('load', JSON.stringify(sources)));
  if (answer.error) {
    const culprit = sources.find((s) => s.file === answer.error.file);
    const error = culprit ? projectorModule.withSyntaxLine(answer.error, culprit.file, culprit.source) : answer.error;
    process.stdout.write(JSON.stringify({ error }) + '\n');
    process.stderr.write('error: ' + String(error.message).split('\n')[0] + '\n');
    return 1;
  }
  process.stdout.write(JSON.stringify(answer.ok) + '\n');
  return 0;
}

process.exitCode = main(process.argv.slice(2));
