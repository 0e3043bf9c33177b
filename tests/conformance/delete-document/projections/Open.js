// A handler deletes its document by returning projections.DELETE; a later
// event starts it again from $init.
var projections = require('../projections');
projections.projectStream('Ticket').named('OpenTickets').by({
  $init: function () { return { comments: 0 }; },
  Commented: function (state) { state.comments += 1; },
  Closed: function () { return projections.DELETE; },
  Reopened: function (state) { state.reopened = true; }
});
projections.aggregate('Board').by({
  Opened: function (state) { state.open = (state.open || 0) + 1; },
  Wiped: function () { return projections.DELETE; }
});
