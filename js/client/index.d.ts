// Types of @jsproj/client (index.js).
import type { Event } from '@jsproj/projections';

export interface AppendOptions {
  /** The stream's version before this append; a different one is a ConcurrencyError and nothing is written. */
  expectedVersion?: number;
  metadata?: Record<string, unknown>;
}

/** jsproj's append message (the spike's): `id` may be left out for a new stream, `type` for an existing one. */
export interface AppendMessage {
  id?: string;
  type?: string;
  data: Event | Event[];
  expected_version?: number;
  metadata?: Record<string, unknown>;
  timestamp?: string;
}

export interface Appended {
  streamId: string;
  version: number;
  positions: number[];
}

/** What archiveStream / unarchiveStream did (changed: false when it was so already). */
export interface StreamChange {
  streamId: string;
  changed: boolean;
  archivedAt: Date | null;
}

export interface Stream {
  id: string;
  type: string;
  version: number;
  events: Event[];
}

/** An event as stored (Python's jsproj.RecordedEvent). */
export declare class RecordedEvent {
  readonly position: number;
  readonly eventId: string;
  readonly streamId: string;
  readonly streamType: string;
  /** Its version in its stream (1, 2, ...). */
  readonly version: number;
  readonly type: string;
  /** The event's fields but $type and $id. */
  readonly data: Record<string, any>;
  readonly metadata: Record<string, unknown> | null;
  readonly timestamp: Date;
  /** When it was appended (the store's clock): what readAll's since/until filter on. */
  readonly appendedAt?: Date;
  /** The event as appended: {$type, $id, ...data}. */
  readonly event: Event;
}

export interface ReadAllOptions {
  /** A position readAll returned (default 0: from the start); not one of an event is an UnknownPositionError. */
  after?: number;
  /** At most this many events (default 1000). */
  limit?: number;
  /** Only events of this type, or of these (up to 32). */
  types?: string | string[];
  /** Only events of streams of this type (category), or of these (up to 32). */
  streamTypes?: string | string[];
  /** Only events appended at or after this time (a Date, or ISO 8601 text with a zone). */
  since?: Date | string;
  /** Only events appended before this time. */
  until?: Date | string;
  /** Only events whose metadata contains this JSON object (PostgreSQL's @>). */
  metadata?: Record<string, unknown>;
  /** The events of archived streams too (default false: left out, as every read leaves them: docs/lifecycle.md). */
  includeArchived?: boolean;
}

/** A where of views: fields (dotted paths) to a value to contain, or to comparisons ({$gte: 4}: $eq $ne $gt $gte $lt $lte $in). */
export type Where = Record<string, unknown>;

export interface FindOptions {
  /** A dotted field, -field for descending, or id (the default); ties in id order. */
  orderBy?: string;
  limit?: number;
  /** The id of the previous page's last document (keyset paging). */
  after?: string;
}

export interface Document<T = any> {
  id: string;
  data: T;
}

/** The documents of one deployed projection (store.views(name)). */
export declare class View<T = any> {
  readonly name: string;
  /** The document (an aggregate's has its name as id); UnknownDocumentError when there is none. */
  get(id: string): Promise<T>;
  find(where?: Where | null, options?: FindOptions): Promise<Document<T>[]>;
  count(where?: Where | null): Promise<number>;
}

export interface SubscribeOptions {
  /** Only events of these types (default: any). */
  eventTypes?: string | string[] | null;
  /** Only events of streams of these types (default: any). */
  streamTypes?: string | string[] | null;
  /** Events read per page (default 100). */
  pageSize?: number;
  /** 'page' (default): one transaction per page, savepoint per event; 'event': one per event. */
  transaction?: 'page' | 'event';
  /** Where a new subscription begins: 'beginning' (default) or 'end' of the log. */
  start?: 'beginning' | 'end';
  /** Seconds between polls when no notification comes (default 1). */
  pollInterval?: number;
  /** End the loop once everything committed before it began is handled. */
  untilCaughtUp?: boolean;
  /** What the run says: waiting for the lease, taking over, reconnecting. */
  log?: ((message: string) => void) | null;
}

/** The connection a delivered event's transaction is on: write through it to commit with the checkpoint. */
export interface SubscriptionClient {
  query(text: string, values?: unknown[]): Promise<{ rows: any[]; rowCount: number | null }>;
}

export interface Delivery {
  event: RecordedEvent;
  /** In the transaction that moves the checkpoint past `event`; do not commit or roll it back. */
  client: SubscriptionClient;
}

/** A subscription: each `for await` over it is a run from its checkpoint. */
export declare class Subscription implements AsyncIterable<Delivery> {
  readonly name: string;
  [Symbol.asyncIterator](): AsyncIterator<Delivery>;
  /** End its runs after the event each holds (that event counts as handled). */
  stop(): void;
  /** Whether a run waits for the lease another consumer holds. */
  readonly waiting: boolean;
}

export interface StoreOptions {
  /** Default: $JSPROJ_DSN, then the pg driver's PG* variables. */
  dsn?: string;
  connectionString?: string;
  /** Default: $JSPROJ_SCHEMA, then public. */
  schema?: string;
  pool?: { query(text: string, values?: unknown[]): Promise<{ rows: any[] }>; end(): Promise<void> };
}

export declare class EventStore {
  constructor(options?: StoreOptions);
  readonly schema: string;
  append(message: AppendMessage, options?: AppendOptions): Promise<Appended>;
  append(streamId: string | null, type: string | null, ...eventsAndOptions: Array<Event | Event[] | AppendOptions>): Promise<Appended>;
  /** All or nothing, one round trip; a refused message uses no position, and its error has `messageNumber`. */
  appendAll(messages: AppendMessage[]): Promise<Appended[]>;
  fetchStream(streamId: string): Promise<Stream | null>;
  fetchView<T = any>(projection: string, id?: string): Promise<T | null>;
  /** Archive a stream: its events stay; reads, live folds and builds leave them out; appends are refused
   * (StreamArchivedError) until it is unarchived (pge_archive_stream: granted by the owner, docs/lifecycle.md). */
  archiveStream(streamId: string): Promise<StreamChange>;
  /** Unarchive a stream: it is read again and takes appends. */
  unarchiveStream(streamId: string): Promise<StreamChange>;
  /** Delete a stream (soft): append its tombstone, a $deleted event; later appends are refused
   * (StreamDeletedError) unless expectedVersion is the tombstone's version, which re-creates the stream. */
  deleteStream(streamId: string, options?: AppendOptions): Promise<Appended>;

  live<T = any>(projection: string, streamId: string, options?: { includeArchived?: boolean }): Promise<T | null>;
  /** The log in the gap-safe order, by what happened (types, streamTypes, since, until, metadata): a reader that
   * passes the last position it saw never misses an event. */
  readAll(options?: ReadAllOptions): Promise<RecordedEvent[]>;
  /** The documents of a deployed projection, by id or by field (Python's store.views(name)). */
  views<T = any>(projection: string): View<T>;
  /** Subscription `name` (letters, digits, _ . : -): iterate it with `for await`; nothing runs until then. */
  subscribe(name: string, options?: SubscribeOptions): Subscription;
  /** Empties streams, events and documents (pge_clean_all_events; the store's owner only). */
  cleanAllEvents(): Promise<void>;
  close(): Promise<void>;
}

export declare function connect(options?: StoreOptions): EventStore;
export declare function toEventMessage(args: unknown[]): AppendMessage;

export declare namespace errors {
  // Every kind of jsproj's error table (js/errors.json), under its parent; tests/conformance/test_error_table.py checks these.
  /** Base class of every jsproj error. */
  class JsprojError extends Error {
    readonly kind: string;
    /** The SQLSTATE, for errors from PostgreSQL. */
    readonly code?: string | null;
    [field: string]: unknown;
  }
  /** Something is wrong with projection code. */
  class ProjectionError extends JsprojError {}
  /** A projection file does not parse. */
  class ProjectionSyntaxError extends ProjectionError {}
  /** A projection file runs but defines something invalid (name, handler, require, ...). */
  class ProjectionDefinitionError extends ProjectionError {}
  /** Projection code failed on an event (a handler, transform or identifiedBy threw, or made a document that cannot be stored). */
  class ProjectionHandlerError extends ProjectionError {}
  /** A projection made a document the value rule refuses (docs/dsl.md): a BigInt, a cycle, nesting past 512 levels, JSON text past 16 MiB, text PostgreSQL cannot store. */
  class DocumentError extends ProjectionHandlerError {}
  /** An upcaster failed on an event (it threw, or returned what is not an event), or the event's $version is not a schema version; the event fails for every projection it was going to, as a handler's error does. */
  class UpcastError extends ProjectionHandlerError {}
  /** A projection name that is not defined. */
  class UnknownProjectionError extends JsprojError {}
  /** A call into the sandbox was stopped by a limit. */
  class SandboxLimitError extends ProjectionError {}
  /** Projection code ran past the time limit of one call. */
  class SandboxTimeoutError extends SandboxLimitError {}
  /** Projection code went past the memory limit. */
  class SandboxMemoryError extends SandboxLimitError {}
  /** The sandbox itself failed (the V8 worker could not start, or died for another reason). */
  class SandboxError extends JsprojError {}
  /** Bad input: events files, append messages, events. */
  class InputError extends JsprojError {}
  /** An events file that is not JSON, JSON Lines or a list of messages. */
  class EventsFileError extends InputError {}
  /** An append message or event that breaks the format. */
  class InvalidEventError extends InputError {
    /** In a batch (appendAll), which message (1 for the first). */
    readonly messageNumber?: number;
  }
  /** A stream is not at the expected version. */
  class ConcurrencyError extends JsprojError {
    readonly streamId: string;
    readonly expected: number;
    readonly actual: number;
  }
  /** A host used the engine wrongly (a bug in jsproj, not in projections). */
  class EngineError extends JsprojError {}
  /** apply named a routed batch the sandbox no longer holds (its worker was replaced). */
  class StaleBatchError extends EngineError {}
  /** An unexpected failure inside the engine. */
  class InternalError extends JsprojError {}
  /** Projection code recursed too deeply. */
  class StackOverflowError extends ProjectionError {}
  /** The store cannot do what was asked (unreachable, not migrated, ...). */
  class StoreError extends JsprojError {}
  /** PostgreSQL cannot be reached. */
  class StoreUnavailableError extends StoreError {}
  /** The store's tables or functions are missing: run jsproj migrate. */
  class SchemaMissingError extends StoreError {}
  /** Stored JSON nested deeper than Python can read (written before jsproj's depth limit, or by SQL). */
  class UnreadableDocumentError extends StoreError {}
  /** No stream has that id. */
  class UnknownStreamError extends StoreError {}
  /** The stream is archived: unarchive it to append to it or to read it without asking for archived streams. */
  class StreamArchivedError extends StoreError {}
  /** The stream was deleted (its last event is the $deleted tombstone): re-create it by appending with its version as expected_version. */
  class StreamDeletedError extends StoreError {}
  /** An append bypassed the Python engine while it keeps inline projections. */
  class PythonEngineRequiredError extends StoreError {}
  /** A projection wrote events (emit, linkTo) without the permission: only async projections deployed with --emit may (docs/from-kurrentdb.md#emit-and-linkto). */
  class EmitNotAllowedError extends StoreError {}
  /** The JavaScript language installed in the database cannot stop a call at jsproj's time limit. */
  class UnlimitedLanguageError extends StoreError {}
  /** The log cannot be partitioned, extended or have partitions detached as asked (docs/partitioning.md), or an append to a partitioned log runs in repeatable read or serializable. */
  class PartitioningError extends StoreError {}
  /** read_all(after=...) was given a position that is not an event's. */
  class UnknownPositionError extends StoreError {}
  /** A read of the log by filters that cannot be run: an unknown option, a bad time, too many types, a bad metadata value or after. */
  class LogFilterError extends InputError {}
  /** An async projection stopped on an event (policy 'stop'); jsproj retry resumes it. */
  class ProjectionStoppedError extends JsprojError {}
  /** A subscriber's handler raised on an event (policy 'stop'). */
  class SubscriptionStoppedError extends JsprojError {}
  /** jsproj subscribers was given a target that does not import, or is not a subscriber. */
  class SubscriberImportError extends InputError {}
  /** Async projections did not catch up before the deadline; lagging names them. */
  class WaitTimeoutError extends JsprojError {}
  /** A projection has no document with that id. */
  class UnknownDocumentError extends JsprojError {}
  /** A query of a view that cannot be run. */
  class QueryError extends InputError {}
  /** A field name that is not a dotted path of names (where keys, order_by, declared indexes). */
  class InvalidFieldError extends QueryError {}
  /** A batch that appends to more streams than PostgreSQL's lock table holds locks for. */
  class BatchTooLargeError extends InputError {}
  /** A schema or projection name that is not a safe SQL identifier. */
  class InvalidNameError extends InputError {}
  /** A deploy whose set lacks deployed projections, without prune: refused, nothing changed. */
  class PruneRequiredError extends InputError {}
  /** The schema cannot be brought up to date (a changed or unknown migration). */
  class MigrationError extends JsprojError {}
  /** The PostgreSQL server could not be found, initialised, started or stopped. */
  class ServerError extends JsprojError {}
  /** A spec file that is not valid JSON or not in the spec format. */
  class SpecFileError extends InputError {}
  /** A REPL command used the wrong way. */
  class ReplError extends InputError {}
}
