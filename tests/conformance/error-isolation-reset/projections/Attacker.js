// A handler that calls the projector's reset(): projection files have no
// such thing, so its own handler fails -- and the error names it, not the
// projections it meant to wipe out.
var dsl = require('projections');
projections.aggregate('Attacker').by({
  Wipe: function () { dsl.reset(); }
});
