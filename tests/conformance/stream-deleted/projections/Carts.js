// A stream's tombstone ($deleted, docs/lifecycle.md#deleting-a-stream): it deletes a stream projection's
// document (Carts) unless the projection handles $deleted (Closed keeps it, flagged); aggregates see it only
// with a $deleted handler (Deletions), never through $any (Everything); cart-2 is re-created after it.
projections.projectStream('Cart').named('Carts').by({
  $init: function () { return { items: 0 }; },
  Added: function (s) { s.items += 1; }
});
projections.projectStream('Cart').named('Closed').by({
  $init: function () { return { items: 0, deleted: false }; },
  Added: function (s) { s.items += 1; },
  $deleted: function (s) { s.deleted = true; }
});
projections.aggregate('Deletions').by({
  $init: function () { return { deleted: 0 }; },
  $deleted: function (s, e, meta) { s.deleted += 1; s.last = meta.streamId; }
});
projections.aggregate('Everything').by({
  $any: function (s) { s.n = (s.n || 0) + 1; }
});
