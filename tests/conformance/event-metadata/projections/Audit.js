// Handlers get read-only metadata as a third argument.
projections.projectStream('Account').named('Audit').by({
  $any: function (state, evt, meta) {
    state.last = {
      streamId: meta.streamId, streamType: meta.streamType, version: meta.version,
      position: meta.position, timestamp: meta.timestamp, eventId: meta.eventId,
      eventType: meta.eventType, metadata: meta.metadata
    };
    meta.version = 999;            // read-only: ignored
    state.versionAfterWrite = meta.version;
  }
});
projections.projectEvent('Deposited').named('Deposits').by(function (evt, meta) {
  return { $id: meta.streamId + '/' + meta.version, amount: evt.amount, at: meta.timestamp };
});
