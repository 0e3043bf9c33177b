// Review 5: emit() is refused where the projection may not write events (here: every host, none deployed with
// --emit), and a handler that catches the refusal fails all the same (never a silent no-op).
fromCategory('order')
.foreachStream()
.when({
  Placed: function (state, event) {
    try { emit('notifications-' + event.streamId, 'OrderSeen', { order: event.streamId }); } catch (e) { /* swallowed */ }
    state.seen = true;
  }
});
