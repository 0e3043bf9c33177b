// Types of the jsproj engine for Node: the projector of the original spike
// (host code) and the DSL projection files use (docs/dsl.md).

/** An event: `$type` names it; `$id` is its UUID (assigned when appended without one). */
export interface Event {
  $type: string;
  $id?: string;
  [field: string]: unknown;
}

/** What a handler gets as its third argument (read-only). */
export interface EventMeta {
  readonly streamId: string | null;
  readonly streamType: string | null;
  readonly version: number | null;
  readonly position: number | null;
  readonly timestamp: string | null;
  readonly eventId: string | null;
  readonly eventType: string;
}

/** A handler mutates `state` in place, returns a new state, or returns `projections.DELETE`. */
export type Handler<S = any> = (state: S, event: Event, meta: EventMeta) => S | void | typeof DELETE;

/** Handlers by event type; `$init` builds the first state, `$any` sees every event. */
export type Definition<S = any> = {
  $init?: () => S;
  $any?: Handler<S>;
} & { [eventType: string]: Handler<S> | (() => S) | undefined };

export declare const DELETE: unique symbol;

export interface Registration {
  readonly name: string;
  readonly kind: 'stream' | 'event' | 'aggregate' | 'view';
  inline(): Registration;
  async(): Registration;
  live(): Registration;
  /** Index the stored documents by a field (a dotted path: 'location', 'party.leader') for queries by field. */
  index(field: string): Registration;
  /** The definition's version (1 to 999999, default 1): a new version of an async projection is built beside the current one (docs/deploy.md#versions). */
  version(number: number): Registration;
}

export interface Projections {
  projectStream(streamType: string): { named(name: string): { by<S>(definition: Definition<S>): Registration } };
  projectEvent(eventType: string): {
    named(name: string): { by(transform: (event: Event, meta: EventMeta) => object | null): Registration };
  };
  aggregate(name: string): { by<S>(definition: Definition<S>): Registration };
  projectView(name: string): {
    identifiedBy(key: (event: Event, meta: EventMeta) => string | string[] | null): { by<S>(definition: Definition<S>): Registration };
  };
  /** Events of `eventType` at schema version `from` (their `$version`; none: 1) become version `from + 1` before
   * any projection sees them: the upcaster changes the event it gets and returns nothing, or returns the next one
   * (docs/dsl.md#upcasters-upcasttypefromnbyfn-and-renameeventoldtonew-upcasting). */
  upcast(eventType: string): {
    from(version: number): { by(upcaster: (event: Event, meta: EventMeta) => object | void): Upcaster };
  };
  /** Events stored as `oldType` reach projections as `newType` (keeping their `$version`). */
  renameEvent(oldType: string): { to(newType: string): Rename };
  readonly DELETE: typeof DELETE;
}

/** An upcaster declared: events of `eventType` at version `from` become version `to`. */
export interface Upcaster {
  readonly eventType: string;
  readonly from: number;
  readonly to: number;
}

/** A rename declared: events stored as `from` reach projections as `to`. */
export interface Rename {
  readonly from: string;
  readonly to: string;
}

/** A document store of one projection (host code). */
export interface DocumentStore {
  find(id: string | number): any;
  update(id: string | number, data: unknown): void;
}

export interface Projection {
  readonly name: string;
  readonly kind: 'stream' | 'event' | 'aggregate' | 'view';
  readonly store: DocumentStore;
  processEvent(id: string | number, event: Partial<Event>): unknown;
  applyEvent?(state: unknown, event: Event): unknown;
  createSnapshot?(events: Event[]): unknown;
}

/** The spike's projector singleton, for host code (Node apps, unit tests of projections). */
export interface Projector extends Projections {
  readonly projections: { [name: string]: Projection };
  readonly store: {
    byId(name: string): DocumentStore;
    byType(): DocumentStore;
    find(name: string, id: string | number): any;
    findAggregate(name: string): any;
    storeAggregate(name: string, data: unknown): void;
  };
  processEvent(streamId: string | number, streamType: string, event: Event): void;
  captureEvent(streamId: string | number, streamType: string, event: Event): void;
  reset(): void;
  activeProjectionNames(): string[];
  loadProjectionsFromFolder(folder: string): Projector;
  createProjector(): Projector;
}

declare const projector: Projector;
export default projector;
