import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LiveSocket, wsUrl, type ConnectionState } from "../src/live/socket";
import { FakeSocket } from "./fakes";

function make(opts: Partial<ConstructorParameters<typeof LiveSocket>[0]> = {}) {
  return new LiveSocket({
    url: () => "ws://test/ws?token=t",
    createSocket: (u) => new FakeSocket(u),
    random: () => 0.5,
    jitter: 0,
    pingMs: 0,
    ...opts,
  });
}

describe("LiveSocket", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.all = [];
  });
  afterEach(() => vi.useRealTimers());

  it("subscribes joined rooms when the connection opens and on every reconnect", () => {
    const s = make();
    s.subscribe("alerts");
    s.subscribe("dashboard");
    s.start();
    const first = FakeSocket.last();
    first.open();
    expect(first.sent).toEqual([
      { action: "subscribe", room: "alerts" },
      { action: "subscribe", room: "dashboard" },
    ]);
    first.serverClose(1006);
    vi.advanceTimersByTime(500);
    const second = FakeSocket.last();
    expect(second).not.toBe(first);
    second.open();
    expect(second.sent).toEqual([
      { action: "subscribe", room: "alerts" },
      { action: "subscribe", room: "dashboard" },
    ]);
  });

  it("sends subscribe and unsubscribe for rooms joined while open, once each", () => {
    const s = make();
    s.start();
    const ws = FakeSocket.last();
    ws.open();
    const leave = s.subscribe("fl-status");
    s.subscribe("fl-status");
    leave();
    leave();
    expect(ws.sent).toEqual([
      { action: "subscribe", room: "fl-status" },
      { action: "unsubscribe", room: "fl-status" },
    ]);
    expect(s.joined).toEqual([]);
  });

  it("backs off exponentially up to the maximum and resets after a successful open", () => {
    const s = make({ baseDelayMs: 100, maxDelayMs: 1000 });
    const states: ConnectionState[] = [];
    s.onState((x) => states.push(x));
    s.start();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      FakeSocket.last().serverClose(1006);
      const w = s.state;
      expect(w.kind).toBe("waiting");
      if (w.kind === "waiting") delays.push(w.retryAt - Date.now());
      vi.advanceTimersByTime(delays[delays.length - 1]!);
    }
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000]);
    FakeSocket.last().open();
    expect(s.state.kind).toBe("open");
    FakeSocket.last().serverClose(1006);
    const w = s.state;
    expect(w.kind === "waiting" && w.retryAt - Date.now()).toBe(100);
    expect(states.some((x) => x.kind === "connecting")).toBe(true);
  });

  it("spreads delays with jitter", () => {
    const lo = make({ baseDelayMs: 1000, jitter: 0.5, random: () => 0 });
    const hi = make({ baseDelayMs: 1000, jitter: 0.5, random: () => 1 });
    expect(lo.delayFor(1)).toBe(500);
    expect(hi.delayFor(1)).toBe(1000);
    expect(lo.delayFor(3)).toBe(2000);
  });

  it("dispatches messages by type and to wildcard handlers, ignoring malformed ones", () => {
    const s = make();
    const created: unknown[] = [];
    const all: string[] = [];
    s.on("alert_created", (d) => created.push(d));
    s.on("*", (_d, m) => all.push(m.type));
    s.start();
    const ws = FakeSocket.last();
    ws.open();
    ws.receive({ type: "connection", data: { connection_id: 1 } });
    ws.receive({ type: "alert_created", data: { id: "a" } });
    ws.receive("not json {");
    ws.receive({ no: "type" });
    ws.receive({ type: "pong", timestamp: "x" });
    expect(created).toEqual([{ id: "a" }]);
    expect(all).toEqual(["connection", "alert_created", "pong"]);
    expect(s.counts.get("alert_created")).toBe(1);
  });

  it("keeps dispatching when one handler throws", () => {
    const s = make();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const got: unknown[] = [];
    s.on("x", () => {
      throw new Error("boom");
    });
    s.on("x", (d) => got.push(d));
    s.start();
    FakeSocket.last().open();
    FakeSocket.last().receive({ type: "x", data: 1 });
    FakeSocket.last().receive({ type: "x", data: 2 });
    expect(got).toEqual([1, 2]);
    expect(warn).toHaveBeenCalledTimes(1);
  });

  it("pings while open", () => {
    const s = make({ pingMs: 1000 });
    s.start();
    const ws = FakeSocket.last();
    ws.open();
    vi.advanceTimersByTime(3100);
    expect(ws.sent.filter((m) => (m as { action: string }).action === "ping")).toHaveLength(3);
    ws.serverClose(1006);
    vi.advanceTimersByTime(5000);
    expect(ws.sent.filter((m) => (m as { action: string }).action === "ping")).toHaveLength(3);
  });

  it("stop closes the socket and cancels the pending retry", () => {
    const s = make();
    s.start();
    FakeSocket.last().serverClose(1006);
    expect(s.state.kind).toBe("waiting");
    s.stop();
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.all).toHaveLength(1);
    expect(s.state.kind).toBe("closed");
    s.start();
    FakeSocket.last().open();
    s.stop();
    expect(FakeSocket.last().closed?.code).toBe(1000);
  });

  it("asks the app to check the token after repeated failures to open", () => {
    const check = vi.fn();
    const s = make({ failuresBeforeCheck: 2, onRepeatedFailure: check });
    s.start();
    FakeSocket.last().serverClose(1006);
    expect(check).not.toHaveBeenCalled();
    vi.advanceTimersByTime(10_000);
    FakeSocket.last().serverClose(1006);
    expect(check).toHaveBeenCalledWith(2);
  });

  it("stops instead of retrying when the check logs out", () => {
    let token: string | null = "t";
    const s = make({
      url: () => (token ? "ws://x" : null),
      failuresBeforeCheck: 1,
      onRepeatedFailure: () => {
        token = null;
        s.stop();
      },
    });
    s.start();
    FakeSocket.last().serverClose(1006);
    expect(s.state.kind).toBe("closed");
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.all).toHaveLength(1);
  });

  it("reports a reconnect (not the first open) so the app can refetch", () => {
    const re = vi.fn();
    const s = make({ onReconnect: re });
    s.start();
    FakeSocket.last().open();
    expect(re).not.toHaveBeenCalled();
    FakeSocket.last().serverClose(1013, "");
    expect(s.state.kind === "waiting" && s.state.reason).toMatch(/too slow/);
    vi.advanceTimersByTime(1000);
    FakeSocket.last().open();
    expect(re).toHaveBeenCalledTimes(1);
  });

  it("retryNow skips the backoff", () => {
    const s = make({ baseDelayMs: 30_000 });
    s.start();
    FakeSocket.last().serverClose(1006);
    s.retryNow();
    expect(FakeSocket.all).toHaveLength(2);
    expect(s.state.kind).toBe("connecting");
  });

  it("does not connect without a token", () => {
    const s = make({ url: () => null });
    s.start();
    expect(FakeSocket.all).toHaveLength(0);
    expect(s.state.kind).toBe("closed");
  });

  it("builds ws and wss URLs with the token escaped", () => {
    expect(wsUrl({ protocol: "http:", host: "127.0.0.1:8011" }, "a b")).toBe("ws://127.0.0.1:8011/ws?token=a%20b");
    expect(wsUrl({ protocol: "https:", host: "soc" }, "t")).toBe("wss://soc/ws?token=t");
  });
});
