import { describe, expect, it } from "vitest";
import { outcomes, precisionOverTime, topK } from "../src/lib/precision";

const pred = (id: string, t: string, facility: string, current: string, next: string[]) => ({
  id,
  timestamp: t,
  facility_id: facility,
  current_technique: current,
  predicted_techniques: next.map((technique_id, i) => ({ technique_id, rank: i + 1, probability: 0.5 })),
});
const alert = (t: string, facility: string, technique: string) => ({ first_seen: t, facility_id: facility, attack_type: technique });

describe("precision@3", () => {
  it("judges each prediction by the next different technique at its facility", () => {
    const preds = [
      pred("hit", "2026-01-01T00:00:00Z", "f1", "T0846", ["T0888", "T0855", "T0831", "T0800"]),
      pred("miss", "2026-01-01T00:10:00Z", "f1", "T0855", ["T0800", "T0801", "T0802", "T0831"]),
      pred("pending", "2026-01-01T00:20:00Z", "f1", "T0831", ["T0800"]),
      pred("other-site", "2026-01-01T00:00:00Z", "f2", "T0846", ["T0888"]),
    ];
    const alerts = [
      alert("2026-01-01T00:00:00Z", "f1", "T0846"), // the prediction's own alert: not after it
      alert("2026-01-01T00:01:00Z", "f1", "T0846"), // same technique: skipped
      alert("2026-01-01T00:02:00Z", "f1", "T0855"),
      alert("2026-01-01T00:15:00Z", "f1", "T0831"),
      alert("2026-01-01T00:05:00Z", "f2", "T0801"),
    ];
    const res = outcomes(preds, alerts);
    expect(res.get("hit")).toEqual({ kind: "hit", actual: "T0855" });
    expect(res.get("miss")).toEqual({ kind: "miss", actual: "T0831" }); // T0831 is 4th: outside the top 3
    expect(res.get("pending")).toEqual({ kind: "pending" });
    expect(res.get("other-site")).toEqual({ kind: "miss", actual: "T0801" });
  });

  it("orders the top three by rank", () => {
    const p = { ...pred("p", "2026-01-01T00:00:00Z", "f", "T1", []), predicted_techniques: [
      { technique_id: "C", rank: 3 },
      { technique_id: "A", rank: 1 },
      { technique_id: "D", rank: 4 },
      { technique_id: "B", rank: 2 },
    ] };
    expect(topK(p)).toEqual(["A", "B", "C"]);
  });

  it("buckets judged predictions over time with a cumulative line", () => {
    const preds = [
      pred("a", "2026-01-01T00:00:00Z", "f", "T1", ["T2"]),
      pred("b", "2026-01-01T00:30:00Z", "f", "T1", ["T9"]),
      pred("c", "2026-01-01T01:00:00Z", "f", "T1", ["T2"]),
    ];
    const alerts = [alert("2026-01-01T00:05:00Z", "f", "T2"), alert("2026-01-01T00:35:00Z", "f", "T2"), alert("2026-01-01T01:05:00Z", "f", "T2")];
    const pts = precisionOverTime(preds, outcomes(preds, alerts), 2);
    // Buckets of 30 min: [a] and [b, c]; a and c are hits, b (top 3 = T9) a miss.
    expect(pts.map((p) => [p.judged, p.precision])).toEqual([
      [1, 1],
      [2, 0.5],
    ]);
    expect(pts[1]!.cumulative).toBeCloseTo(2 / 3);
  });

  it("is empty when nothing can be judged", () => {
    expect(precisionOverTime([pred("a", "2026-01-01T00:00:00Z", "f", "T1", ["T2"])], new Map([["a", { kind: "pending" }]]))).toEqual([]);
  });
});
