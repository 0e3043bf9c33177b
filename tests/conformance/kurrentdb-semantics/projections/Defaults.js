// No handler for any type and no $any: KurrentDB's default handler, the state becomes the last event's body.
// fromStreamsMatching: the streams a function of the stream id says true to.
fromStreamsMatching(function (streamId) { return streamId.indexOf('order-x') === 0; })
.when({ $init: function () { return {}; } });
