// A view across streams: each document is keyed by a function of the event.
projections.projectView('UserTasks')
  .identifiedBy(function (evt) { return evt.user; })
  .by({
    $init: function () { return { open: [], done: 0 }; },
    TaskAssigned: function (state, evt, meta) { state.open.push(meta.streamId); },
    TaskCompleted: function (state, evt, meta) {
      state.open = state.open.filter(function (id) { return id !== meta.streamId; });
      state.done += 1;
    }
  });
