// QuestStarted has had three shapes. Version 1 (first stored as QuestBegun)
// named the hero and the town; version 2 made the hero an object; version 3
// starts a party, led by the hero, and says where and when it started.
// Projections are written against version 3 only: these bring every older
// event up to it before any projection sees it.
projections.renameEvent('QuestBegun').to('QuestStarted');

projections.upcast('QuestStarted').from(1).by(function (evt) {
  evt.hero = { name: evt.hero };               // changed in place: nothing to return
});

projections.upcast('QuestStarted').from(2).by(function (evt) {
  return {
    party: [{ name: evt.hero.name, role: 'leader' }],
    start: { town: evt.town, at: new Date().toISOString() }   // the event's time, as in a handler
  };
});
