// Compiled by tests/cli/test_node_client.py with tsc --noEmit: the declarations must describe real use.
import projector, { Event, EventMeta } from '@jsproj/projections';
import { connect, errors, Appended } from '@jsproj/client';

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
  await store.close();
}
void main;
