const { aggregate } = require('jsproj');       // destructured, as a Node user would (the package's old name)
aggregate('ViaPackage').by({ Ping: (s) => { s.n = (s.n || 0) + 1; } });
