// The original projector-hub test: a stream projection, an event projection and
// an aggregate all fed by the same TownReached events, defined in one file.
var projector = require('../lib/projections');

projector.projectStream('Quest').named('Party').by({
	$init: function(){ return { active: true, traveled: 0, location: null }; },
	QuestStarted: function(state, evt){ state.active = true; state.location = evt.location; },
	TownReached: function(state, evt){ state.location = evt.location; state.traveled += evt.traveled; },
	EndOfDay: function(state, evt){ state.traveled += evt.traveled; },
	QuestEnded: function(state, evt){ state.active = false; state.location = evt.location; }
});

projector.projectEvent('TownReached').named('Arrival').by(function(evt){
	return { town: evt.location, $id: evt.location };
});

projector.aggregate('Traveled').by({
	$init: function(){ return { traveled: 0 }; },
	TownReached: function(state, evt){ state.traveled += evt.traveled; },
	EndOfDay: function(state, evt){ state.traveled += evt.traveled; }
});
