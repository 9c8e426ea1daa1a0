// The `/ws` client: one connection shared by the whole UI, joined rooms re-subscribed on
// every (re)connect, exponential backoff with jitter, a keep-alive ping, and a state that
// the UI shows.

export type Room = "alerts" | "fl-status" | "attack-graph" | "dashboard";

export type ConnectionState =
  | { kind: "idle" }
  | { kind: "connecting"; attempt: number }
  | { kind: "open"; since: number }
  | { kind: "waiting"; attempt: number; retryAt: number; reason: string }
  | { kind: "closed" };

/** A server message: `{type, data}` (replies such as `pong` and `error` carry other fields). */
export interface ServerMessage {
  type: string;
  data?: unknown;
  [key: string]: unknown;
}

/** The parts of the browser's WebSocket the client uses (a fake replaces it in tests). */
export interface SocketLike {
  readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface LiveSocketOptions {
  /** The URL to connect to (with the current token), or null when logged out. */
  url: () => string | null;
  createSocket?: (url: string) => SocketLike;
  /** First retry delay, ms (doubles per failed attempt up to `maxDelayMs`). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Keep-alive ping interval, ms (0: none). */
  pingMs?: number;
  /** 0..1: the random share of a delay (spreads the reconnects of many browsers). */
  jitter?: number;
  random?: () => number;
  now?: () => number;
  /** After this many attempts failed without ever opening, `onRepeatedFailure` is called
   *  (the app checks whether the token is still valid). */
  failuresBeforeCheck?: number;
  onRepeatedFailure?: (attempts: number) => void;
  /** Called when a connection opens after an earlier one was lost (data may have been missed). */
  onReconnect?: () => void;
}

const OPEN = 1;

export class LiveSocket {
  private readonly o: Required<Omit<LiveSocketOptions, "onRepeatedFailure" | "onReconnect">> &
    Pick<LiveSocketOptions, "onRepeatedFailure" | "onReconnect">;
  private ws: SocketLike | null = null;
  private rooms = new Set<Room>();
  private handlers = new Map<string, Set<(data: unknown, msg: ServerMessage) => void>>();
  private stateListeners = new Set<(s: ConnectionState) => void>();
  private _state: ConnectionState = { kind: "idle" };
  private attempt = 0;
  private everOpened = false;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private stopped = true;
  /** Messages received, by type (for diagnostics). */
  readonly counts = new Map<string, number>();

  constructor(opts: LiveSocketOptions) {
    this.o = {
      createSocket: (url) => new WebSocket(url) as unknown as SocketLike,
      baseDelayMs: 500,
      maxDelayMs: 30_000,
      pingMs: 25_000,
      jitter: 0.3,
      random: Math.random,
      now: Date.now,
      failuresBeforeCheck: 2,
      ...opts,
    };
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** Starts connecting (no-op when already started). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    this.connect();
  }

  /** Closes the connection and stops reconnecting (e.g. on logout). */
  stop(): void {
    this.stopped = true;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onerror = ws.onmessage = ws.onopen = null;
      try {
        ws.close(1000, "client closed");
      } catch {
        /* already closed */
      }
    }
    this.everOpened = false;
    this.setState({ kind: "closed" });
  }

  /** Reconnects now, skipping the backoff (the "retry now" button). */
  retryNow(): void {
    if (this.stopped || this._state.kind !== "waiting") return;
    this.clearTimers();
    this.connect();
  }

  /** Joins a room (kept across reconnects); returns a function that leaves it. */
  subscribe(room: Room): () => void {
    if (!this.rooms.has(room)) {
      this.rooms.add(room);
      this.sendJson({ action: "subscribe", room });
    }
    return () => {
      if (this.rooms.delete(room)) this.sendJson({ action: "unsubscribe", room });
    };
  }

  /** The rooms joined now. */
  get joined(): Room[] {
    return [...this.rooms];
  }

  /** Calls `fn` for every message of `type` (`"*"`: every message). */
  on(type: string, fn: (data: unknown, msg: ServerMessage) => void): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  onState(fn: (s: ConnectionState) => void): () => void {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  }

  /** The delay before retry number `attempt` (1-based), ms. */
  delayFor(attempt: number): number {
    const exp = Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** Math.max(0, attempt - 1));
    const j = this.o.jitter;
    return Math.round(exp * (1 - j + j * this.o.random()));
  }

  private setState(s: ConnectionState) {
    this._state = s;
    for (const fn of this.stateListeners) fn(s);
  }

  private sendJson(v: unknown) {
    if (this.ws && this.ws.readyState === OPEN) this.ws.send(JSON.stringify(v));
  }

  private clearTimers() {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.retryTimer = this.pingTimer = null;
  }

  private connect() {
    const url = this.o.url();
    if (!url) {
      this.stop();
      return;
    }
    this.attempt += 1;
    this.setState({ kind: "connecting", attempt: this.attempt });
    let ws: SocketLike;
    try {
      ws = this.o.createSocket(url);
    } catch (e) {
      this.scheduleRetry(e instanceof Error ? e.message : "cannot open a WebSocket");
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      const reconnected = this.everOpened;
      this.everOpened = true;
      this.attempt = 0;
      for (const room of this.rooms) ws.send(JSON.stringify({ action: "subscribe", room }));
      if (this.o.pingMs > 0) {
        this.pingTimer = setInterval(() => this.sendJson({ action: "ping" }), this.o.pingMs);
      }
      this.setState({ kind: "open", since: this.o.now() });
      if (reconnected) this.o.onReconnect?.();
    };
    ws.onmessage = (ev) => this.dispatch(ev.data);
    ws.onerror = () => {
      /* a close event follows; handled there */
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearTimers();
      if (this.stopped) return;
      const reason =
        ev.code === 1013
          ? "server dropped this client as too slow"
          : ev.reason || (opened ? `connection lost (code ${ev.code})` : "cannot connect");
      if (!opened && this.attempt >= this.o.failuresBeforeCheck) {
        this.o.onRepeatedFailure?.(this.attempt);
        if (this.stopped) return;
      }
      this.scheduleRetry(reason);
    };
  }

  private scheduleRetry(reason: string) {
    const delay = this.delayFor(this.attempt);
    this.setState({
      kind: "waiting",
      attempt: this.attempt,
      retryAt: this.o.now() + delay,
      reason,
    });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) this.connect();
    }, delay);
  }

  private dispatch(raw: unknown) {
    if (typeof raw !== "string") return;
    let msg: ServerMessage;
    try {
      const v: unknown = JSON.parse(raw);
      if (!v || typeof v !== "object" || typeof (v as ServerMessage).type !== "string") return;
      msg = v as ServerMessage;
    } catch {
      return; // not JSON: ignore, never crash the feed
    }
    this.counts.set(msg.type, (this.counts.get(msg.type) ?? 0) + 1);
    for (const key of [msg.type, "*"]) {
      const set = this.handlers.get(key);
      if (!set) continue;
      for (const fn of set) {
        try {
          fn(msg.data, msg);
        } catch (e) {
          // One bad handler must not stop the others; report it without a console error
          // storm (a handler bug is a UI bug, shown once per type).
          if (!this.reported.has(key)) {
            this.reported.add(key);
            console.warn(`live message handler for ${key} failed`, e);
          }
        }
      }
    }
  }
  private reported = new Set<string>();
}

/** The `/ws` URL for the page's origin and a token. */
export function wsUrl(loc: { protocol: string; host: string }, token: string): string {
  const proto = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${loc.host}/ws?token=${encodeURIComponent(token)}`;
}
