const { aggregate } = require('@jsproj/projections');   // the npm package's scoped name
aggregate('ViaScopedPackage').by({ Ping: (s) => { s.n = (s.n || 0) + 1; } });
