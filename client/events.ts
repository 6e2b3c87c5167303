import { anyFilterMatches, parseEventFilter, type EventFilter } from "../core/filters.js";
import type { ChangeName } from "../core/item.js";
import { LarderError, toLarderError } from "./errors.js";

/**
 * The client side of change events (`data.on`, EV8-EV10): one Watch stream
 * per client, handlers matched locally, one event at a time per namespace
 * and namespaces in parallel, failing handlers retried with exponential
 * backoff, reconnects that resume from the last token.
 */

/** What a handler receives (EV4), plus Larder's id, time and resume token. */
export interface DataEvent {
  readonly name: ChangeName;
  readonly item: unknown;
  readonly previous?: unknown;
  readonly id: string;
  readonly time: Date;
  readonly resumeToken: string;
  readonly expired: boolean;
}

/** The raw event as the stream delivers it, before shaping for handlers. */
export interface StreamEvent {
  readonly event: DataEvent;
  /** The item's full key, for filter matching and per-namespace ordering. */
  readonly key: string;
}

interface QueuedEvent extends StreamEvent {
  /** When the client received it: the retry period runs from here (EV9). */
  readonly arrived: number;
}

export type WatchMessage = { readonly started: string } | { readonly event: StreamEvent };

/** Opens one Watch stream; the generated client is adapted to this in data.ts. */
export type WatchSource = (request: { resumeToken?: string; subscription?: string }, signal: AbortSignal) => AsyncIterable<WatchMessage>;

export type EventHandler = (event: DataEvent) => unknown;

/** Time as the dispatcher sees it, so tests can drive retries without waiting. */
export interface EventClock {
  now(): number;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export interface EventOptions {
  /** Give up on an event this long after it arrived (EV9: 24 hours). */
  readonly retryForMs?: number;
  /** First retry delay; it doubles up to maxBackoffMs. */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** A handler may run this long when registered without a timeout (EV10: 60 s). */
  readonly defaultTimeoutMs?: number;
  /** Stop reading the stream while this many events wait for handlers. */
  readonly maxQueued?: number;
  /** A durable subscription: acknowledged positions survive client restarts. */
  readonly subscription?: string;
  /** Called with each acknowledged position of a named subscription. */
  readonly acknowledge?: (subscription: string, resumeToken: string) => Promise<void>;
  readonly clock?: EventClock;
  /** Where dropped events and stream failures are reported. */
  readonly log?: (message: string, detail?: unknown) => void;
}

interface Registration {
  readonly filters: readonly EventFilter[];
  readonly handler: EventHandler;
  readonly timeoutMs: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

export const realClock: EventClock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
    }),
};

export class EventDispatcher {
  private readonly registrations: Registration[] = [];
  private readonly queues = new Map<string, QueuedEvent[]>();
  private readonly running = new Set<string>();
  private readonly abort = new AbortController();
  private readonly clock: EventClock;
  private readonly log: (message: string, detail?: unknown) => void;
  private readonly options: Required<Omit<EventOptions, "subscription" | "acknowledge" | "clock" | "log">>;
  private connection?: Promise<void>;
  private lastToken?: string;
  private queued = 0;
  private drained?: () => void;
  /** Why the server refuses the stream, while it does (ready() rejects with it). */
  private refused?: LarderError;
  /** Positions in arrival order, for acknowledging only what is handled without a gap. */
  private readonly pending: { token: string; done: boolean }[] = [];
  /** Settles once the first stream has its start position, or the first attempt to open it has failed. */
  private firstAttempt?: Promise<void>;
  private firstAttemptSettled: () => void = () => undefined;
  private firstAttemptOver = false;

  constructor(
    private readonly source: WatchSource,
    private readonly settings: EventOptions = {},
  ) {
    this.clock = settings.clock ?? realClock;
    this.log = settings.log ?? ((message, detail) => console.error(`[larder events] ${message}`, ...(detail === undefined ? [] : [detail])));
    this.options = {
      retryForMs: settings.retryForMs ?? DAY_MS,
      initialBackoffMs: settings.initialBackoffMs ?? 1000,
      maxBackoffMs: settings.maxBackoffMs ?? 5 * 60 * 1000,
      defaultTimeoutMs: settings.defaultTimeoutMs ?? 60_000,
      maxQueued: settings.maxQueued ?? 10_000,
    };
  }

  /** EV1/EV10: registers a handler; names are checked now, filters matched as written. */
  on(specifiers: string | readonly string[], handler: EventHandler, timeoutMs?: number): void {
    const list = typeof specifiers === "string" ? [specifiers] : specifiers;
    const filters = list.map((specifier) => {
      try {
        return parseEventFilter(specifier);
      } catch (error) {
        // The client's one error type, with the code and reason the server's Watch would give.
        throw new LarderError("INVALID_ARGUMENT", (error as Error).message, "INVALID_FILTER");
      }
    });
    if (typeof handler !== "function") throw new Error("An event handler must be a function");
    this.registrations.push({ filters, handler, timeoutMs: timeoutMs ?? this.options.defaultTimeoutMs });
    if (!this.connection) {
      this.firstAttempt = new Promise(
        (resolve) =>
          (this.firstAttemptSettled = () => {
            this.firstAttemptOver = true;
            resolve();
          }),
      );
      this.connection = this.connect();
    }
  }

  /**
   * What a write of this client waits for before it is sent: the stream's
   * start position. A Watch starts at the head of the change log as the server
   * sees it when the stream opens, which is a round trip after `on()` returns;
   * a write sent meanwhile could commit before that head and its event would
   * never be delivered. Waiting here puts every write made after `on()` after
   * the stream's start, with or without `ready()`, on any transport. Settles
   * also when the first attempt fails (a refused stream must not stall writes:
   * they fail or succeed on their own) and at once when nothing listens.
   */
  async started(): Promise<void> {
    await this.firstAttempt;
  }

  /** True once started() would resolve at once: calls then leave without waiting a tick, in the order they are made. */
  get hasStarted(): boolean {
    return this.firstAttempt === undefined || this.firstAttemptOver;
  }

  /**
   * Resolves once the stream is in place: events committed after this are
   * delivered. Rejects while the server refuses the stream for good (a key
   * without the watch role, an unknown key), which retrying cannot mend.
   */
  async ready(): Promise<void> {
    while (this.lastToken === undefined && !this.abort.signal.aborted) {
      if (this.refused) throw this.refused;
      await this.clock.sleep(5, this.abort.signal);
    }
  }

  async close(): Promise<void> {
    this.abort.abort();
    this.firstAttemptSettled();
    this.drained?.();
    await this.connection;
  }

  /** Reads the stream for as long as the dispatcher lives, reconnecting from the last token. */
  private async connect(): Promise<void> {
    let backoff = this.options.initialBackoffMs;
    while (!this.abort.signal.aborted) {
      try {
        const request = { resumeToken: this.lastToken, subscription: this.settings.subscription };
        for await (const message of this.source(request, this.abort.signal)) {
          backoff = this.options.initialBackoffMs;
          if ("started" in message) {
            this.refused = undefined;
            this.lastToken ??= message.started;
            this.firstAttemptSettled();
            continue;
          }
          this.lastToken = message.event.event.resumeToken;
          this.enqueue(message.event);
          if (this.queued >= this.options.maxQueued) {
            await new Promise<void>((resolve) => (this.drained = resolve));
          }
        }
      } catch (error) {
        if (this.abort.signal.aborted) return;
        const code = (error as { code?: number }).code;
        // One line (code, reason, message): a stream failure is the server's answer, not a bug to dump with its headers.
        const summary = oneLine(error);
        if (code === 11 /* OUT_OF_RANGE */) {
          this.log(`the resume position is older than the server keeps; events in between were missed (${summary})`);
          // A subscription's stored position would be refused again: go on from the head instead.
          this.lastToken = this.settings.subscription ? await this.head().catch(() => undefined) : undefined;
        } else if (code === 7 /* PERMISSION_DENIED */ || code === 16 /* UNAUTHENTICATED */) {
          const refused = toLarderError(error);
          const again = this.refused !== undefined && oneLine(this.refused) === summary;
          this.refused =
            refused instanceof LarderError ? refused : new LarderError(code === 7 ? "PERMISSION_DENIED" : "UNAUTHENTICATED", String(error));
          // Said once, not at every retry; said again only if the answer changes.
          if (!again) this.log(`the server refuses the event stream: ${summary}; retrying with backoff (data.ready() rejects meanwhile)`);
        } else {
          this.log(`the event stream failed (${summary}); reconnecting in ${backoff} ms`);
        }
      }
      // The stream ended or failed before it started: writes go ahead and meet whatever the server says.
      this.firstAttemptSettled();
      await this.clock.sleep(backoff, this.abort.signal);
      backoff = Math.min(backoff * 2, this.options.maxBackoffMs);
    }
  }

  /** Where a new stream without a position starts (its `started` token). */
  private async head(): Promise<string | undefined> {
    const abort = new AbortController();
    const stop = () => abort.abort();
    this.abort.signal.addEventListener("abort", stop, { once: true });
    try {
      for await (const message of this.source({}, abort.signal)) {
        if ("started" in message) return message.started;
      }
      return undefined;
    } finally {
      this.abort.signal.removeEventListener("abort", stop);
      abort.abort();
    }
  }

  private enqueue(streamEvent: StreamEvent): void {
    const matching = this.registrations.filter((registration) =>
      anyFilterMatches(registration.filters, streamEvent.event.name, splitKey(streamEvent.key)),
    );
    if (matching.length === 0) return;
    const namespace = namespaceOf(streamEvent.key);
    const queue = this.queues.get(namespace) ?? [];
    queue.push({ ...streamEvent, arrived: this.clock.now() });
    this.queues.set(namespace, queue);
    this.queued++;
    this.pending.push({ token: streamEvent.event.resumeToken, done: false });
    if (!this.running.has(namespace)) void this.drain(namespace);
  }

  /** EV8: one event at a time per namespace; handlers in registration order. */
  private async drain(namespace: string): Promise<void> {
    this.running.add(namespace);
    const queue = this.queues.get(namespace)!;
    while (queue.length > 0 && !this.abort.signal.aborted) {
      const streamEvent = queue[0];
      let settled = true;
      for (const registration of this.registrations) {
        if (!anyFilterMatches(registration.filters, streamEvent.event.name, splitKey(streamEvent.key))) continue;
        settled = await this.runWithRetries(registration, streamEvent.event, streamEvent.arrived);
        if (!settled) break;
      }
      // Closed while a handler was still being retried: the event stays unacknowledged, for the
      // subscription's next consumer (at-least-once), and so does everything after it.
      if (!settled) break;
      queue.shift();
      this.queued--;
      await this.completed(streamEvent.event.resumeToken);
      if (this.queued < this.options.maxQueued) this.drained?.();
    }
    this.running.delete(namespace);
    if (queue.length === 0) this.queues.delete(namespace);
  }

  /**
   * EV9: retried on its own with exponential backoff, until the retry period
   * ends. True once the event is settled for this handler (handled, or
   * dropped after the retry period); false when closed before that.
   */
  private async runWithRetries(registration: Registration, event: DataEvent, arrived: number): Promise<boolean> {
    let delay = this.options.initialBackoffMs;
    for (let attempt = 1; !this.abort.signal.aborted; attempt++) {
      try {
        await this.runOnce(registration, event);
        return true;
      } catch (error) {
        if (this.clock.now() + delay - arrived > this.options.retryForMs) {
          this.log(`dropping ${event.name} event ${event.id} after ${attempt} failed attempts`, error);
          return true;
        }
        await this.clock.sleep(delay, this.abort.signal);
        delay = Math.min(delay * 2, this.options.maxBackoffMs);
      }
    }
    return false;
  }

  private async runOnce(registration: Registration, event: DataEvent): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the handler ran past its timeout of ${registration.timeoutMs} ms`)), registration.timeoutMs);
    });
    try {
      await Promise.race([Promise.resolve().then(() => registration.handler(event)), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Acknowledges the newest position before which every event has been handled. */
  private async completed(token: string): Promise<void> {
    const entry = this.pending.find((p) => p.token === token && !p.done);
    if (entry) entry.done = true;
    let acknowledged: string | undefined;
    while (this.pending.length > 0 && this.pending[0].done) acknowledged = this.pending.shift()!.token;
    const { subscription, acknowledge } = this.settings;
    if (acknowledged !== undefined && subscription && acknowledge) {
      try {
        await acknowledge(subscription, acknowledged);
      } catch (error) {
        this.log("could not acknowledge the subscription's position; it will be acknowledged with the next event", error);
      }
    }
  }
}

/** `PERMISSION_DENIED (ROLE_NOT_ALLOWED): the key's role 'read' may not call Watch`. */
function oneLine(error: unknown): string {
  const shaped = toLarderError(error);
  if (shaped instanceof LarderError) return `${shaped.code}${shaped.reason ? ` (${shaped.reason})` : ""}: ${shaped.message}`;
  return shaped instanceof Error ? shaped.message : String(shaped);
}

/** EV3 and EV7: a key's namespace is the text before its first colon; a simple key is its own. */
function splitKey(key: string): { full: string; ns: string; part: string } {
  const colon = key.indexOf(":");
  return colon === -1 ? { full: key, ns: key, part: "" } : { full: key, ns: key.slice(0, colon), part: key.slice(colon + 1) };
}

function namespaceOf(key: string): string {
  const { ns, part } = splitKey(key);
  // A simple key is its own namespace, apart from the collection of the same name (EV7).
  return part === "" ? `simple:${ns}` : `ns:${ns}`;
}
