var fs = require('fs');
projections.aggregate('Sneaky').by({ A: function (s) { s.data = fs.readFileSync('/etc/passwd', 'utf8'); } });
