// What the UI keeps of the live feed: bounded lists and bounded time series, so a page
// left open in a SOC for days holds a fixed amount of memory. Pure TypeScript (tested
// without React); React reads it through `useSyncExternalStore`.
import type { AlertRow, AlertStats, FlClientRow, FlRoundRow, PipelineSample, PredictionRow } from "../api/types";
import { addPoint, emptyRates, facilityCounters, ratesFrom, type Baseline, type Rates } from "./rates";

export { POINTS_MAX, type RateSeries, type Rates } from "./rates";

export const FEED_MAX = 100;
export const PREDICTIONS_MAX = 20;
export const DETECTIONS_MAX = 200;
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

/** Counters of the pipeline in a `dashboard_update` (checked at run time: see `rates.ts`). */
export interface PipelineCounters {
  flows_in?: number;
  anomalies?: number;
  /** Per-facility cumulative counters (anomalies: flows with an anomalous verdict). */
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
  rates: emptyRates(),
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

  /** Redraws the rate charts from the server's recent counter samples (`GET
   *  /api/pipeline/counters`), so they draw before the first `dashboard_update` and have no
   *  hole for the time the page was elsewhere. The server sampled every message the live
   *  feed carried, so its history replaces the live one; a live baseline newer than the
   *  samples extends it. */
  seedCounters(samples: PipelineSample[]) {
    const points: Baseline[] = [];
    for (const s of samples) {
      const counters = facilityCounters(s.counters);
      const t = Date.parse(s.timestamp);
      if (counters && Number.isFinite(t)) points.push({ t, counters });
    }
    let { rates, baseline } = ratesFrom(points);
    if (!baseline) return;
    const live = this.baseline;
    if (live && live.t > baseline.t) {
      rates = addPoint(rates, baseline, live);
      baseline = live;
    }
    this.baseline = baseline;
    this.set({ rates });
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
    const counters = facilityCounters(d.pipeline);
    if (counters) {
      const t = (d.timestamp && Date.parse(d.timestamp)) || Date.now();
      const point = { t, counters };
      next.rates = addPoint(this.s.rates, this.baseline, point);
      if (!this.baseline || t > this.baseline.t) this.baseline = point;
    }
    this.set(next);
    return true;
  }
}
