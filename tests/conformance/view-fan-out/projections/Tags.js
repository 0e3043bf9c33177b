// identifiedBy may give several keys (fan-out: the event updates each
// document, duplicates counted once) or none (the event is skipped).
projections.projectView('Tags')
  .identifiedBy(function (evt) { return evt.tags; })
  .by({
    $init: function () { return { posts: [] }; },
    Posted: function (state, evt) { state.posts.push(evt.title); }
  });
