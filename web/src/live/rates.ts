// Live rates from the pipeline's cumulative per-facility counters: flows per second and the
// anomaly rate (share of flows judged anomalous) between two successive samples, one series
// per facility, each bounded to POINTS_MAX points. Pure functions, tested without React.

/** Points per live chart series (at one sample every 5 s: 10 minutes). */
export const POINTS_MAX = 120;

/** Cumulative counts of one facility. */
export interface Count {
  flows: number;
  anomalies: number;
}

/** Counters at one time (ms since the epoch), by facility. */
export interface Baseline {
  t: number;
  counters: Record<string, Count>;
}

/** One live series: a value per point of `Rates.t` (null: no value for that interval). */
export interface RateSeries {
  flowsPerS: (number | null)[];
  /** Anomalous flows / flows in the interval, 0..1 (null when no flow came in). */
  anomalyRate: (number | null)[];
}

export interface Rates {
  /** Point times, ms since the epoch (the end of each interval). */
  t: number[];
  /** By facility id. */
  series: Record<string, RateSeries>;
  /** Whether the server reports per-facility counters at all. */
  perFacility: boolean;
}

export const emptyRates = (): Rates => ({ t: [], series: {}, perFacility: false });

function isObj(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === "object" && !Array.isArray(v);
}

function count(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** The per-facility counters of a `pipeline` object (`dashboard_update`'s or a sample's);
 *  null when it has none. Malformed entries are skipped. */
export function facilityCounters(pipeline: unknown): Record<string, Count> | null {
  if (!isObj(pipeline) || !isObj(pipeline.facilities)) return null;
  const out: Record<string, Count> = {};
  for (const [id, c] of Object.entries(pipeline.facilities)) {
    if (!isObj(c)) continue;
    const flows = count(c.flows_in);
    const anomalies = count(c.anomalies);
    if (flows !== undefined && anomalies !== undefined) out[id] = { flows, anomalies };
  }
  return out;
}

/** Appends to a bounded array in place. */
function pushBounded<T>(arr: T[], v: T, max: number) {
  arr.push(v);
  if (arr.length > max) arr.splice(0, arr.length - max);
}

/** `old` with one more point: the rates between `prev` and `next`. Returns `old` itself
 *  when there is no earlier sample or `next` is not later. Never mutates `old`. */
export function addPoint(old: Rates, prev: Baseline | null, next: Baseline): Rates {
  if (!prev || next.t <= prev.t) return old.perFacility ? old : { ...old, perFacility: true };
  const dt = (next.t - prev.t) / 1000;
  const rates: Rates = {
    t: [...old.t],
    series: Object.fromEntries(
      Object.entries(old.series).map(([k, v]) => [k, { flowsPerS: [...v.flowsPerS], anomalyRate: [...v.anomalyRate] }]),
    ),
    perFacility: true,
  };
  const n = rates.t.length;
  pushBounded(rates.t, next.t, POINTS_MAX);
  const keys = new Set([...Object.keys(rates.series), ...Object.keys(next.counters)]);
  for (const k of keys) {
    let s = rates.series[k];
    if (!s) {
      // A series that appears late is padded so every series lines up with `t`.
      s = rates.series[k] = { flowsPerS: Array(n).fill(null), anomalyRate: Array(n).fill(null) };
    }
    const a = prev.counters[k];
    const b = next.counters[k];
    let flows: number | null = null;
    let rate: number | null = null;
    // Counters only grow; a decrease means the pipeline restarted: a gap, not a negative rate.
    if (a && b && b.flows >= a.flows && b.anomalies >= a.anomalies) {
      const df = b.flows - a.flows;
      flows = df / dt;
      rate = df > 0 ? Math.min(1, (b.anomalies - a.anomalies) / df) : null;
    }
    pushBounded(s.flowsPerS, flows, POINTS_MAX);
    pushBounded(s.anomalyRate, rate, POINTS_MAX);
  }
  // Drop series with no value left in the window (a facility that went away).
  for (const [k, s] of Object.entries(rates.series)) {
    if (!next.counters[k] && s.flowsPerS.every((v) => v === null)) delete rates.series[k];
  }
  return rates;
}

/** Rates drawn from a list of samples (any order; malformed ones skipped), and the last
 *  sample as the baseline for the next one. */
export function ratesFrom(samples: Baseline[]): { rates: Rates; baseline: Baseline | null } {
  const sorted = [...samples].filter((s) => Number.isFinite(s.t)).sort((a, b) => a.t - b.t);
  let rates = emptyRates();
  let baseline: Baseline | null = null;
  for (const s of sorted) {
    rates = addPoint(rates, baseline, s);
    if (!baseline || s.t > baseline.t) baseline = s;
  }
  return { rates, baseline };
}
