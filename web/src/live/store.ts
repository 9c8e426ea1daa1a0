// What the UI keeps of the live feed: bounded lists and bounded time series, so a page
// left open in a SOC for days holds a fixed amount of memory. Pure TypeScript (tested
// without React); React reads it through `useSyncExternalStore`.
import type { AlertRow, AlertStats, FlClientRow, FlRoundRow, PredictionRow } from "../api/types";

export const FEED_MAX = 100;
export const PREDICTIONS_MAX = 20;
export const DETECTIONS_MAX = 200;
/** Points per live chart series (at one `dashboard_update` every 5 s: 10 minutes). */
export const POINTS_MAX = 120;
export const CLIENTS_MAX = 64;

/** `attack_detected`'s data. */
export interface Detection {
  alert_id: string;
  facility_id: string;
  technique_id: string;
  technique_name: string;
  tactic_ids: string[];
  severity: string;
  timestamp: string;
}

/** Counters of the pipeline in a `dashboard_update` (all optional: servers differ). */
export interface PipelineCounters {
  flows_in?: number;
  anomalies?: number;
  attacks?: number;
  incidents?: number;
  /** Per-facility counters, when the server reports them. */
  facilities?: Record<string, { flows_in?: number; anomalies?: number }>;
  [k: string]: unknown;
}

export interface DashboardUpdate {
  alerts?: AlertStats;
  pipeline?: PipelineCounters | null;
  fl_round?: FlRoundRow | null;
  connections?: number;
  timestamp?: string;
}

/** One live series per point: flows per second, and anomalies per second (the pipeline
 *  counts anomalous detector verdicts: one flow flagged by two detectors counts twice). */
export interface RateSeries {
  flowsPerS: (number | null)[];
  anomalyRate: (number | null)[];
}

export interface Rates {
  /** Point times, ms since the epoch. */
  t: number[];
  /** By facility id; `"all"` when the server reports only totals. */
  series: Record<string, RateSeries>;
  perFacility: boolean;
}

export interface LiveState {
  feed: AlertRow[];
  predictions: PredictionRow[];
  detections: Detection[];
  rates: Rates;
  dashboard: DashboardUpdate | null;
  flRound: FlRoundRow | null;
  flClients: FlClientRow[];
  /** Messages dropped as malformed. */
  ignored: number;
}

const empty = (): LiveState => ({
  feed: [],
  predictions: [],
  detections: [],
  rates: { t: [], series: {}, perFacility: false },
  dashboard: null,
  flRound: null,
  flClients: [],
  ignored: 0,
});

function isObj(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === "object" && !Array.isArray(v);
}

function isAlert(v: unknown): v is AlertRow {
  return isObj(v) && typeof v.id === "string" && typeof v.facility_id === "string" && typeof v.severity === "string";
}

function isPrediction(v: unknown): v is PredictionRow {
  return isObj(v) && typeof v.id === "string" && Array.isArray(v.predicted_techniques);
}

function isDetection(v: unknown): v is Detection {
  return isObj(v) && typeof v.alert_id === "string" && typeof v.technique_id === "string";
}

/** Puts `item` first (replacing an entry with the same id), keeping at most `max`. */
export function upsertBounded<T extends { id: string }>(list: T[], item: T, max: number): T[] {
  const rest = list.filter((x) => x.id !== item.id);
  rest.unshift(item);
  if (rest.length > max) rest.length = max;
  return rest;
}

/** Appends to a bounded array in place. */
function pushBounded<T>(arr: T[], v: T, max: number) {
  arr.push(v);
  if (arr.length > max) arr.splice(0, arr.length - max);
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

interface Baseline {
  t: number;
  counters: Record<string, { flows: number; anomalies: number }>;
}

export class LiveStore {
  private s: LiveState = empty();
  private listeners = new Set<() => void>();
  private baseline: Baseline | null = null;

  getSnapshot = (): LiveState => this.s;

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  private set(next: Partial<LiveState>) {
    this.s = { ...this.s, ...next };
    for (const fn of this.listeners) fn();
  }

  /** Forgets everything (logout). */
  reset() {
    this.baseline = null;
    this.set(empty());
  }

  /** Seeds the feed with alerts fetched over REST (newest first); live ones stay first. */
  seedFeed(alerts: AlertRow[]) {
    const known = new Set(this.s.feed.map((a) => a.id));
    const merged = [...this.s.feed, ...alerts.filter((a) => !known.has(a.id))];
    merged.sort((a, b) => Date.parse(b.last_seen) - Date.parse(a.last_seen));
    this.set({ feed: merged.slice(0, FEED_MAX) });
  }

  seedPredictions(rows: PredictionRow[]) {
    const known = new Set(this.s.predictions.map((p) => p.id));
    const merged = [...this.s.predictions, ...rows.filter((p) => !known.has(p.id))];
    merged.sort((a, b) => Date.parse(b.timestamp) - Date.parse(a.timestamp));
    this.set({ predictions: merged.slice(0, PREDICTIONS_MAX) });
  }

  /** Handles one server message; returns whether it changed the state. */
  handle(type: string, data: unknown): boolean {
    switch (type) {
      case "alert_created":
      case "alert_updated":
        if (!isAlert(data)) return this.bad();
        this.set({ feed: upsertBounded(this.s.feed, data, FEED_MAX) });
        return true;
      case "attack_detected": {
        if (!isDetection(data)) return this.bad();
        const detections = [data, ...this.s.detections];
        if (detections.length > DETECTIONS_MAX) detections.length = DETECTIONS_MAX;
        this.set({ detections });
        return true;
      }
      case "prediction_created":
      case "prediction_updated":
        if (!isPrediction(data)) return this.bad();
        this.set({ predictions: upsertBounded(this.s.predictions, data, PREDICTIONS_MAX) });
        return true;
      case "fl_progress":
        return this.flProgress(data);
      case "dashboard_update":
        return this.dashboard(data);
      default:
        return false;
    }
  }

  private bad(): false {
    this.set({ ignored: this.s.ignored + 1 });
    return false;
  }

  private flProgress(data: unknown): boolean {
    if (!isObj(data)) return this.bad();
    if (isObj(data.round) && typeof data.round.id === "number") {
      const round = data.round as unknown as FlRoundRow;
      const cur = this.s.flRound;
      // A newer round replaces the clients of the previous one.
      const clients = cur && cur.id !== round.id ? [] : this.s.flClients;
      this.set({ flRound: round, flClients: clients });
      return true;
    }
    if (isObj(data.client) && typeof data.client.id === "string") {
      const client = data.client as unknown as FlClientRow;
      let clients = this.s.flClients;
      if (this.s.flRound && client.round_id !== this.s.flRound.id && client.round_id > this.s.flRound.id) {
        clients = [];
      }
      this.set({ flClients: upsertBounded(clients, client, CLIENTS_MAX) });
      return true;
    }
    return this.bad();
  }

  private dashboard(data: unknown): boolean {
    if (!isObj(data)) return this.bad();
    const d = data as DashboardUpdate;
    const next: Partial<LiveState> = { dashboard: d };
    if (isObj(d.fl_round) && typeof d.fl_round.id === "number") next.flRound = d.fl_round;
    const p = d.pipeline;
    if (isObj(p)) {
      const t = (d.timestamp && Date.parse(d.timestamp)) || Date.now();
      const counters: Baseline["counters"] = {};
      let perFacility = false;
      if (isObj(p.facilities) && Object.keys(p.facilities).length > 0) {
        perFacility = true;
        for (const [id, c] of Object.entries(p.facilities)) {
          const flows = num(c?.flows_in);
          if (flows !== undefined) counters[id] = { flows, anomalies: num(c?.anomalies) ?? 0 };
        }
      } else {
        const flows = num(p.flows_in);
        if (flows !== undefined) counters.all = { flows, anomalies: num(p.anomalies) ?? 0 };
      }
      next.rates = this.addPoint(t, counters, perFacility);
    }
    this.set(next);
    return true;
  }

  /** Turns two successive counter snapshots into one chart point per series. */
  private addPoint(t: number, counters: Baseline["counters"], perFacility: boolean): Rates {
    const prev = this.baseline;
    this.baseline = { t, counters };
    const old = this.s.rates;
    if (!prev || t <= prev.t) return old;
    const dt = (t - prev.t) / 1000;
    // New arrays (the snapshot is immutable for React), bounded to POINTS_MAX.
    const rates: Rates = {
      t: [...old.t],
      series: Object.fromEntries(
        Object.entries(old.series).map(([k, v]) => [k, { flowsPerS: [...v.flowsPerS], anomalyRate: [...v.anomalyRate] }]),
      ),
      perFacility,
    };
    if (old.perFacility !== perFacility) {
      rates.t = [];
      rates.series = {};
    }
    const n = rates.t.length;
    pushBounded(rates.t, t, POINTS_MAX);
    const keys = new Set([...Object.keys(rates.series), ...Object.keys(counters)]);
    for (const k of keys) {
      let s = rates.series[k];
      if (!s) {
        // A series that appears late is padded so every series lines up with `t`.
        s = rates.series[k] = { flowsPerS: Array(n).fill(null), anomalyRate: Array(n).fill(null) };
      }
      const a = prev.counters[k];
      const b = counters[k];
      let flows: number | null = null;
      let rate: number | null = null;
      if (a && b && b.flows >= a.flows && b.anomalies >= a.anomalies) {
        flows = (b.flows - a.flows) / dt;
        rate = (b.anomalies - a.anomalies) / dt;
      }
      pushBounded(s.flowsPerS, flows, POINTS_MAX);
      pushBounded(s.anomalyRate, rate, POINTS_MAX);
    }
    // Drop series with no value in the window (a facility that went away).
    for (const [k, s] of Object.entries(rates.series)) {
      if (s.flowsPerS.every((v) => v === null) && !counters[k]) delete rates.series[k];
    }
    return rates;
  }
}
