'use strict';
// `require('jsproj/projections')`: the same projector singleton as `require('jsproj')`.
module.exports = require('./index.js');
