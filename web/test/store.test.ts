import { describe, expect, it } from "vitest";
import { FEED_MAX, LiveStore, POINTS_MAX, PREDICTIONS_MAX, upsertBounded } from "../src/live/store";
import type { AlertRow } from "../src/api/types";

function alert(i: number, extra: Partial<AlertRow> = {}): AlertRow {
  const t = new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString();
  return {
    id: `a${i}`,
    timestamp: t,
    first_seen: t,
    last_seen: t,
    facility_id: "plant-1",
    severity: "high",
    status: "new",
    title: `alert ${i}`,
    description: "",
    attack_type: "T0846",
    attack_name: "Remote System Discovery",
    correlation_confidence: 0.9,
    correlation_summary: "",
    context_analysis: {},
    tactic_ids: [],
    src_ip: "10.0.0.1",
    dst_ip: "10.0.0.2",
    flow_count: 1,
    model_versions: {},
    ...extra,
  } as AlertRow;
}

function dash(t: number, flows: number, anomalies: number, facilities?: Record<string, { flows_in: number; anomalies: number }>) {
  return {
    alerts: { total: 0, critical: 0, unresolved: 0, false_positives: 0 },
    pipeline: { flows_in: flows, anomalies, ...(facilities ? { facilities } : {}) },
    fl_round: null,
    connections: 1,
    timestamp: new Date(t).toISOString(),
  };
}

describe("LiveStore", () => {
  it("keeps the live feed newest first and bounded", () => {
    const s = new LiveStore();
    for (let i = 0; i < FEED_MAX + 50; i++) s.handle("alert_created", alert(i));
    const feed = s.getSnapshot().feed;
    expect(feed).toHaveLength(FEED_MAX);
    expect(feed[0]!.id).toBe(`a${FEED_MAX + 49}`);
  });

  it("replaces an updated alert instead of duplicating it", () => {
    const s = new LiveStore();
    s.handle("alert_created", alert(1));
    s.handle("alert_created", alert(2));
    s.handle("alert_updated", alert(1, { status: "acknowledged" }));
    const feed = s.getSnapshot().feed;
    expect(feed.map((a) => a.id)).toEqual(["a1", "a2"]);
    expect(feed[0]!.status).toBe("acknowledged");
  });

  it("counts and drops malformed messages without changing the state", () => {
    const s = new LiveStore();
    const before = s.getSnapshot().feed;
    expect(s.handle("alert_created", { nope: 1 })).toBe(false);
    expect(s.handle("prediction_created", null)).toBe(false);
    expect(s.handle("fl_progress", { other: 1 })).toBe(false);
    expect(s.handle("unknown_type", {})).toBe(false);
    expect(s.getSnapshot().feed).toBe(before);
    expect(s.getSnapshot().ignored).toBe(3);
  });

  it("notifies subscribers with a new snapshot on every change", () => {
    const s = new LiveStore();
    let n = 0;
    const off = s.subscribe(() => n++);
    const a = s.getSnapshot();
    s.handle("alert_created", alert(1));
    expect(n).toBe(1);
    expect(s.getSnapshot()).not.toBe(a);
    off();
    s.handle("alert_created", alert(2));
    expect(n).toBe(1);
  });

  it("seeds the feed from REST without losing live entries", () => {
    const s = new LiveStore();
    s.handle("alert_created", alert(10));
    s.seedFeed([alert(10), alert(3), alert(5)]);
    expect(s.getSnapshot().feed.map((a) => a.id)).toEqual(["a10", "a5", "a3"]);
  });

  it("bounds predictions", () => {
    const s = new LiveStore();
    for (let i = 0; i < PREDICTIONS_MAX + 5; i++)
      s.handle("prediction_created", { id: `p${i}`, timestamp: "2026-01-01T00:00:00Z", predicted_techniques: [] });
    expect(s.getSnapshot().predictions).toHaveLength(PREDICTIONS_MAX);
  });

  it("turns per-facility counters into flows/s and the share of anomalous flows", () => {
    const s = new LiveStore();
    const t0 = Date.UTC(2026, 0, 1);
    s.handle("dashboard_update", dash(t0, 1000, 10, { a: { flows_in: 1000, anomalies: 10 } }));
    expect(s.getSnapshot().rates.t).toHaveLength(0);
    s.handle("dashboard_update", dash(t0 + 5000, 1500, 60, { a: { flows_in: 1500, anomalies: 60 } }));
    const r = s.getSnapshot().rates;
    expect(r.perFacility).toBe(true);
    expect(r.series.a!.flowsPerS).toEqual([100]);
    expect(r.series.a!.anomalyRate).toEqual([0.1]);
  });

  it("draws nothing from totals alone", () => {
    const s = new LiveStore();
    const t0 = Date.UTC(2026, 0, 1);
    s.handle("dashboard_update", dash(t0, 1000, 10));
    s.handle("dashboard_update", dash(t0 + 5000, 1500, 20));
    expect(s.getSnapshot().rates.t).toHaveLength(0);
    expect(s.getSnapshot().rates.perFacility).toBe(false);
    expect(s.getSnapshot().dashboard?.pipeline?.flows_in).toBe(1500);
  });

  it("leaves a gap (not a negative rate) when the counters restart", () => {
    const s = new LiveStore();
    const t0 = Date.UTC(2026, 0, 1);
    const f = (n: number) => ({ a: { flows_in: n, anomalies: 0 } });
    s.handle("dashboard_update", dash(t0, 0, 0, f(1000)));
    s.handle("dashboard_update", dash(t0 + 5000, 0, 0, f(20)));
    s.handle("dashboard_update", dash(t0 + 10000, 0, 0, f(520)));
    expect(s.getSnapshot().rates.series.a!.flowsPerS).toEqual([null, 100]);
    expect(s.getSnapshot().rates.series.a!.anomalyRate).toEqual([null, 0]);
  });

  it("keeps one series per facility when the server reports them, bounded", () => {
    const s = new LiveStore();
    const t0 = Date.UTC(2026, 0, 1);
    for (let i = 0; i < POINTS_MAX + 30; i++) {
      const f: Record<string, { flows_in: number; anomalies: number }> = { a: { flows_in: i * 50, anomalies: i } };
      if (i >= 10) f.b = { flows_in: (i - 10) * 10, anomalies: 0 };
      s.handle("dashboard_update", dash(t0 + i * 5000, 0, 0, f));
    }
    const r = s.getSnapshot().rates;
    expect(r.perFacility).toBe(true);
    expect(r.t).toHaveLength(POINTS_MAX);
    expect(r.series.a!.flowsPerS).toHaveLength(POINTS_MAX);
    expect(r.series.b!.flowsPerS).toHaveLength(POINTS_MAX);
    expect(r.series.a!.flowsPerS.at(-1)).toBe(10);
    expect(r.series.a!.anomalyRate.at(-1)).toBe(0.02);
    expect(r.series.b!.flowsPerS.at(-1)).toBe(2);
  });

  it("seeds the charts from the server's samples and continues with the live feed", () => {
    const s = new LiveStore();
    const t0 = Date.UTC(2026, 0, 1);
    const sample = (i: number) => ({
      timestamp: new Date(t0 + i * 5000).toISOString(),
      counters: { facilities: { a: { flows_in: i * 100, anomalies: i * 5 }, b: { flows_in: i * 20, anomalies: 0 } } },
    });
    // One live message arrived before the REST answer.
    s.handle("dashboard_update", dash(t0 + 3 * 5000, 0, 0, { a: { flows_in: 300, anomalies: 15 }, b: { flows_in: 60, anomalies: 0 } }));
    s.seedCounters([sample(2), sample(0), sample(1)] as never);
    let r = s.getSnapshot().rates;
    expect(r.t).toEqual([t0 + 5000, t0 + 10000, t0 + 15000]);
    expect(r.series.a!.flowsPerS).toEqual([20, 20, 20]);
    expect(r.series.a!.anomalyRate).toEqual([0.05, 0.05, 0.05]);
    expect(r.series.b!.flowsPerS).toEqual([4, 4, 4]);
    // The next live message continues from the newest baseline.
    s.handle("dashboard_update", dash(t0 + 4 * 5000, 0, 0, { a: { flows_in: 400, anomalies: 20 }, b: { flows_in: 80, anomalies: 0 } }));
    r = s.getSnapshot().rates;
    expect(r.t).toHaveLength(4);
    expect(r.series.a!.flowsPerS.at(-1)).toBe(20);
  });

  it("ignores malformed samples and a server without a pipeline", () => {
    const s = new LiveStore();
    const before = s.getSnapshot().rates;
    s.seedCounters([]);
    s.seedCounters([{ timestamp: "not a time", counters: { facilities: { a: { flows_in: 1, anomalies: 0 } } } }] as never);
    s.seedCounters([{ timestamp: new Date().toISOString(), counters: { flows_in: 5 } }] as never);
    expect(s.getSnapshot().rates).toBe(before);
  });

  it("tracks the federation round and its clients from fl_progress", () => {
    const s = new LiveStore();
    s.handle("fl_progress", { round: { id: 1, round_number: 1, phase: "training" } });
    s.handle("fl_progress", { client: { id: "c1", round_id: 1, name: "site-1" } });
    expect(s.getSnapshot().flRound?.phase).toBe("training");
    expect(s.getSnapshot().flClients).toHaveLength(1);
    s.handle("fl_progress", { round: { id: 2, round_number: 2, phase: "distributing" } });
    expect(s.getSnapshot().flClients).toHaveLength(0);
  });

  it("reset forgets everything", () => {
    const s = new LiveStore();
    s.handle("alert_created", alert(1));
    s.reset();
    expect(s.getSnapshot().feed).toEqual([]);
  });

  it("upsertBounded keeps the limit", () => {
    const l = upsertBounded([{ id: "a" }, { id: "b" }], { id: "c" }, 2);
    expect(l.map((x) => x.id)).toEqual(["c", "a"]);
  });
});
