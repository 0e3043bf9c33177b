// Types of @jsproj/client (index.js).
import type { Event } from 'jsproj';

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

export interface Stream {
  id: string;
  type: string;
  version: number;
  events: Event[];
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
  live<T = any>(projection: string, streamId: string): Promise<T | null>;
  /** Empties streams, events and documents (pge_clean_all_events; the store's owner only). */
  cleanAllEvents(): Promise<void>;
  close(): Promise<void>;
}

export declare function connect(options?: StoreOptions): EventStore;
export declare function toEventMessage(args: unknown[]): AppendMessage;

export declare namespace errors {
  class JsprojError extends Error {
    readonly kind: string;
    /** The SQLSTATE, for errors from PostgreSQL. */
    readonly code?: string | null;
    [field: string]: unknown;
  }
  class InputError extends JsprojError {}
  class InvalidEventError extends InputError {
    /** In a batch (appendAll), which message (1 for the first). */
    readonly messageNumber?: number;
  }
  class BatchTooLargeError extends InputError {}
  class ConcurrencyError extends JsprojError {
    readonly streamId: string;
    readonly expected: number;
    readonly actual: number;
  }
  class UnknownProjectionError extends JsprojError {}
  class ProjectionError extends JsprojError {}
  class ProjectionHandlerError extends ProjectionError {}
  class DocumentError extends ProjectionHandlerError {}
  class SandboxLimitError extends ProjectionError {}
  class SandboxTimeoutError extends SandboxLimitError {}
  class SandboxMemoryError extends SandboxLimitError {}
  class StoreError extends JsprojError {}
  class StoreUnavailableError extends StoreError {}
  class SchemaMissingError extends StoreError {}
  class PythonEngineRequiredError extends StoreError {}
}
