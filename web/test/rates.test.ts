import { describe, expect, it } from "vitest";
import { POINTS_MAX, addPoint, emptyRates, facilityCounters, ratesFrom } from "../src/live/rates";

describe("rates", () => {
  it("reads per-facility counters and skips malformed entries", () => {
    expect(facilityCounters(null)).toBeNull();
    expect(facilityCounters({ flows_in: 3 })).toBeNull();
    expect(
      facilityCounters({
        facilities: {
          a: { flows_in: 10, anomalies: 1 },
          b: { flows_in: "10", anomalies: 1 },
          c: { flows_in: -1, anomalies: 0 },
          d: null,
          e: { flows_in: 5 },
        },
      }),
    ).toEqual({ a: { flows: 10, anomalies: 1 } });
  });

  it("pads a facility that appears late and drops one that is gone from the window", () => {
    let rates = emptyRates();
    let prev = null as Parameters<typeof addPoint>[1];
    for (let i = 0; i < POINTS_MAX + 5; i++) {
      const counters: Record<string, { flows: number; anomalies: number }> = { a: { flows: i * 10, anomalies: 0 } };
      if (i === 3 || i === 4) counters.gone = { flows: i, anomalies: 0 };
      const next = { t: i * 1000, counters };
      rates = addPoint(rates, prev, next);
      prev = next;
      if (i === 4) expect(rates.series.gone!.flowsPerS).toEqual([null, null, null, 1]);
    }
    expect(rates.t).toHaveLength(POINTS_MAX);
    expect(rates.series.gone).toBeUndefined();
    expect(rates.series.a!.flowsPerS.every((v) => v === 10)).toBe(true);
  });

  it("has no anomaly rate for an interval without flows and never above 1", () => {
    const a = { t: 0, counters: { x: { flows: 10, anomalies: 0 } } };
    const b = { t: 1000, counters: { x: { flows: 10, anomalies: 0 } } };
    const c = { t: 2000, counters: { x: { flows: 12, anomalies: 9 } } };
    const { rates, baseline } = ratesFrom([c, a, b]);
    expect(rates.series.x!.flowsPerS).toEqual([0, 2]);
    expect(rates.series.x!.anomalyRate).toEqual([null, 1]);
    expect(baseline).toBe(c);
  });

  it("does not change the rates it is given", () => {
    const r0 = emptyRates();
    const a = { t: 0, counters: { x: { flows: 0, anomalies: 0 } } };
    const b = { t: 1000, counters: { x: { flows: 5, anomalies: 1 } } };
    const r1 = addPoint(r0, a, b);
    const r2 = addPoint(r1, b, { t: 2000, counters: { x: { flows: 10, anomalies: 1 } } });
    expect(r1.t).toEqual([1000]);
    expect(r2.t).toEqual([1000, 2000]);
    expect(r0.t).toEqual([]);
    // A sample not later than the baseline adds nothing.
    expect(addPoint(r2, b, a)).toBe(r2);
  });
});
