'use strict';
// `require('@jsproj/projections/projections')`: the same projector singleton as `require('@jsproj/projections')`.
module.exports = require('./index.js');
