// No $id in the view: the document is keyed by the event's $id.
projections.projectEvent('TownLeft').named('Departure').by(function (evt) {
  if (evt.secret) return null;   // no document for this event
  return { town: evt.location };
});
