// The event object KurrentDB's handlers get, one partition per stream: sequenceNumber 0-based, the
// category by KurrentDB's rule (before the first '-'), the partition, the body without jsproj's $type/$id.
fromCategory('order')
.foreachStream()
.when({
  $init: function () { return { seen: [] }; },
  $any: function (state, event) {
    state.seen.push({
      type: event.eventType, stream: event.streamId, sequenceNumber: event.sequenceNumber, isJson: event.isJson,
      category: event.category, partition: event.partition, body: event.body, same: event.data === event.body,
      metadata: event.metadata, created: event.created, eventId: event.eventId, link: event.linkMetadata
    });
  },
  $deleted: function (state, nothing, partition, isSoftDelete) {
    state.deleted = [nothing, partition, isSoftDelete];
    return { replaced: true };            // KurrentDB ignores $deleted's answer: only the mutation counts
  }
});
