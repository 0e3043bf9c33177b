// Handlers get read-only metadata as a third argument.
projections.projectStream('Account').named('Audit').by({
  $any: function (state, evt, meta) {
    state.last = {
      streamId: meta.streamId, streamType: meta.streamType, version: meta.version,
      position: meta.position, timestamp: meta.timestamp, eventId: meta.eventId,
      eventType: meta.eventType, metadata: meta.metadata
    };
    try { meta.version = 999; state.writeRefused = false; }       // read-only (files are strict: it throws)
    catch (e) { state.writeRefused = e instanceof TypeError; }
    state.versionAfterWrite = meta.version;
  }
});
projections.projectEvent('Deposited').named('Deposits').by(function (evt, meta) {
  return { $id: meta.streamId + '/' + meta.version, amount: evt.amount, at: meta.timestamp };
});
