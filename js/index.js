'use strict';
// The Node.js host: loads the engine files into this context and exports the
// projector singleton of the original spike, with
// loadProjectionsFromFolder() and the whole engine as `projector.engine`.

const fs = require('fs');
const path = require('path');
const vm = require('vm');

const LIB = path.join(__dirname, 'lib');

function loadEngine() {
  const jsproj = {};
  for (const file of JSON.parse(fs.readFileSync(path.join(LIB, 'bundle.json'), 'utf8'))) {
    const filename = path.join(LIB, file);
    vm.compileFunction(fs.readFileSync(filename, 'utf8'), ['jsproj'], { filename })(jsproj);
  }
  return jsproj;
}

const engine = loadEngine();

// The line a syntax error is on, which only the host's own compiler knows.
function withSyntaxLine(error, file, source) {
  if (!error || error.kind !== 'ProjectionSyntaxError') return error;
  try {
    new vm.Script('(function () {' + source + '\n})', { filename: file });
  } catch (e) {
    const match = new RegExp('^' + file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + ':(\\d+)').exec(e.stack || '');
    if (match) {
      // Past the end of the source means "at its end" (the wrapper adds a line).
      error.line = Math.min(Number(match[1]), source.split('\n').length);
      error.message = error.message.replace(file + ':', file + ':' + error.line + ':');
    }
  }
  return error;
}

// Read every *.js file of a folder (sorted by name) as projection sources.
function readProjectionFolder(folder) {
  return fs.readdirSync(folder)
    .filter((name) => name.endsWith('.js'))
    .sort()
    .map((name) => ({ file: name, source: fs.readFileSync(path.join(folder, name), 'utf8') }));
}

// Load sources into a projector, with syntax errors located by file and line.
function loadSources(projector, sources) {
  try {
    return engine.loadInto(projector, sources);
  } catch (e) {
    const culprit = sources.find((s) => s.file === e.file);
    throw culprit ? withSyntaxLine(e, culprit.file, culprit.source) : e;
  }
}

function attach(projector) {
  projector.loadProjectionsFromFolder = function (folder) {
    projector.reset();
    loadSources(projector, readProjectionFolder(folder));
    return projector;
  };
  Object.defineProperty(projector, 'engine', { value: engine, enumerable: false });
  return projector;
}

const projector = attach(engine.createProjector());

// A fresh projector of its own (not the singleton), e.g. for parallel tests.
Object.defineProperty(projector, 'createProjector', {
  value: () => attach(engine.createProjector()),
  enumerable: false
});
Object.defineProperty(projector, 'loadSources', { value: loadSources, enumerable: false });
Object.defineProperty(projector, 'readProjectionFolder', { value: readProjectionFolder, enumerable: false });
Object.defineProperty(projector, 'withSyntaxLine', { value: withSyntaxLine, enumerable: false });

module.exports = projector;
