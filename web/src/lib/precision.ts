// precision@3 of the next-technique predictions, judged against what happened next: a
// prediction made at facility F for technique X is a hit when the next alert raised at F
// after it, for a technique other than X, is one of its top three.
export interface PredLike {
  id: string;
  timestamp: string;
  facility_id: string;
  current_technique: string;
  predicted_techniques: { technique_id: string; rank?: number; probability?: number }[];
}

export interface AlertLike {
  facility_id: string;
  attack_type: string;
  first_seen: string;
}

export type Outcome = { kind: "hit"; actual: string } | { kind: "miss"; actual: string } | { kind: "pending" };

/** The top `k` predicted technique ids (by rank, else by order). */
export function topK(p: PredLike, k = 3): string[] {
  return [...p.predicted_techniques]
    .sort((a, b) => (a.rank ?? 0) - (b.rank ?? 0))
    .slice(0, k)
    .map((t) => t.technique_id);
}

/** The outcome of every prediction, by prediction id. */
export function outcomes(preds: PredLike[], alerts: AlertLike[], k = 3): Map<string, Outcome> {
  const byFacility = new Map<string, { t: number; technique: string }[]>();
  for (const a of alerts) {
    const t = Date.parse(a.first_seen);
    if (Number.isNaN(t)) continue;
    let l = byFacility.get(a.facility_id);
    if (!l) byFacility.set(a.facility_id, (l = []));
    l.push({ t, technique: a.attack_type });
  }
  for (const l of byFacility.values()) l.sort((a, b) => a.t - b.t);
  const out = new Map<string, Outcome>();
  for (const p of preds) {
    const t = Date.parse(p.timestamp);
    const l = byFacility.get(p.facility_id) ?? [];
    // First alert strictly after the prediction (binary search), then the first of another technique.
    let lo = 0;
    let hi = l.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((l[mid]?.t ?? 0) <= t) lo = mid + 1;
      else hi = mid;
    }
    let next: string | undefined;
    for (let i = lo; i < l.length; i++) {
      const a = l[i];
      if (a && a.technique !== p.current_technique) {
        next = a.technique;
        break;
      }
    }
    if (next === undefined) out.set(p.id, { kind: "pending" });
    else out.set(p.id, topK(p, k).includes(next) ? { kind: "hit", actual: next } : { kind: "miss", actual: next });
  }
  return out;
}

export interface PrecisionPoint {
  /** Bucket start, ms since the epoch. */
  t: number;
  /** Hits / judged predictions in the bucket (null: none judged). */
  precision: number | null;
  /** Cumulative up to the end of the bucket. */
  cumulative: number | null;
  judged: number;
}

/** precision@k over time in `buckets` equal time buckets spanning the predictions. */
export function precisionOverTime(preds: PredLike[], res: Map<string, Outcome>, buckets = 20): PrecisionPoint[] {
  const judged = preds
    .map((p) => ({ t: Date.parse(p.timestamp), o: res.get(p.id) }))
    .filter((x): x is { t: number; o: Outcome } => !!x.o && x.o.kind !== "pending" && !Number.isNaN(x.t))
    .sort((a, b) => a.t - b.t);
  if (judged.length === 0) return [];
  const t0 = judged[0]!.t;
  const t1 = judged[judged.length - 1]!.t;
  const n = t1 > t0 ? buckets : 1;
  const width = Math.max(1, (t1 - t0) / n);
  const pts: PrecisionPoint[] = Array.from({ length: n }, (_, i) => ({ t: t0 + i * width, precision: null, cumulative: null, judged: 0 }));
  const hits = new Array<number>(n).fill(0);
  for (const x of judged) {
    const i = Math.min(n - 1, Math.floor((x.t - t0) / width));
    pts[i]!.judged += 1;
    if (x.o.kind === "hit") hits[i]! += 1;
  }
  let ch = 0;
  let cj = 0;
  pts.forEach((p, i) => {
    ch += hits[i]!;
    cj += p.judged;
    p.precision = p.judged ? hits[i]! / p.judged : null;
    p.cumulative = cj ? ch / cj : null;
  });
  return pts;
}
