// One document per arrival in a town, keyed by the event's $id.
projections
  .projectEvent('TownReached')
  .named('Arrival')
  .by(function (evt, meta) {
    return { town: evt.location, quest: meta.streamId, day: meta.version };
  });
