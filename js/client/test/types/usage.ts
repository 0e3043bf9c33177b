// Compiled by tests/cli/test_node_client.py with tsc --noEmit: the declarations must describe real use.
import projector, { Event, EventMeta } from '@jsproj/projections';
import { connect, errors, Appended, Document, RecordedEvent, StreamChange, Subscription } from '@jsproj/client';

projector.projectStream('Quest').named('Party').by({
  $init: () => ({ towns: [] as string[] }),
  TownReached: (state, event: Event, meta: EventMeta) => { state.towns.push(String(event.location) + meta.version); },
});
projector.aggregate('Traveled').by({ EndOfDay: (state: { days?: number }) => { state.days = (state.days || 0) + 1; } });

async function main(): Promise<void> {
  const store = connect({ dsn: process.env.JSPROJ_DSN });
  const done: Appended = await store.append('quest-1', 'Quest', { $type: 'QuestStarted' }, { expectedVersion: 0 });
  await store.append({ id: 'quest-1', data: [{ $type: 'EndOfDay' }] });
  try {
    const batch: Appended[] = await store.appendAll([{ id: 'quest-2', type: 'Quest', data: { $type: 'QuestStarted' } }]);
    console.log(batch[0].positions);
  } catch (e) {
    if (e instanceof errors.InvalidEventError) console.log(e.messageNumber);
  }
  const stream = await store.fetchStream('quest-1');
  const party = await store.fetchView<{ towns: string[] }>('Party', 'quest-1');
  try {
    await store.append('quest-1', null, { $type: 'EndOfDay' }, { expectedVersion: 0 });
  } catch (e) {
    if (e instanceof errors.ConcurrencyError) console.log(e.expected, e.actual, done.version, stream?.events.length, party?.towns);
  }
  const page: RecordedEvent[] = await store.readAll({ after: 0, limit: 100 });
  const next = await store.readAll({ after: page[page.length - 1].position });
  const paid: RecordedEvent[] = await store.readAll({ types: ['Paid', 'Refunded'], streamTypes: 'Order', since: new Date(0),
    until: '2026-01-05T08:00:00Z', metadata: { tenant: 'acme' } });
  const appended: Date | undefined = paid[0].appendedAt;
  console.log(appended?.toISOString());
  console.log(next.map((e) => [e.position, e.streamId, e.event.$type, e.timestamp.toISOString()]));
  const archived: StreamChange = await store.archiveStream('quest-1');
  console.log(archived.changed, archived.archivedAt?.toISOString(), (await store.unarchiveStream('quest-1')).changed);
  const tombstone: Appended = await store.deleteStream('quest-1', { metadata: { by: 'ops' } });
  await store.append('quest-1', 'Quest', { $type: 'QuestStarted' }, { expectedVersion: tombstone.version });
  const parties = store.views<{ location: string; traveled: number }>('Party');
  const far: Document<{ location: string; traveled: number }>[] =
    await parties.find({ traveled: { $gte: 100 }, location: 'Moria' }, { orderBy: '-traveled', limit: 10 });
  console.log(far.map((doc) => doc.data.location), await parties.count({ active: false }), (await parties.get('quest-1')).traveled);
  const booking: Subscription = store.subscribe('invoiced', { eventTypes: ['Issued'], start: 'end', untilCaughtUp: true });
  for await (const { event, client } of booking) {
    await client.query('insert into invoiced values ($1, $2)', [event.streamId, event.data.total]);
    if (event.version > 9) booking.stop();
  }
  await store.close();
}
void main;
