import { useEffect } from "react";
import { Link } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { api, live } from "../services";
import { keys, useClients, useOpenBySeverity, usePrivacy, useRounds } from "../lib/queries";
import { useLive, useLiveInvalidate, useNow } from "../lib/hooks";
import { fmtAgo, fmtNum, fmtPct, fmtTime } from "../lib/format";
import { Empty, ErrorState, Loading, Panel } from "../components/states";
import { Meter, SeverityBadge, StatusBadge } from "../components/badges";
import { TimeChart, colorFor } from "../components/charts";
import { SEVERITIES, type AlertRow, type FlRoundRow, type PredictionRow } from "../api/types";

export default function Overview() {
  useLiveInvalidate(["alert_created", "alert_updated"], [keys.openBySeverity], 5000);
  useLiveInvalidate(["fl_progress"], [keys.rounds, keys.privacy, keys.clients], 3000);
  return (
    <div className="page page-overview">
      <h1>Overview</h1>
      <div className="kpis">
        <OpenAlerts />
        <SitesOnline />
        <RoundCard />
        <PrivacyCard />
      </div>
      <div className="grid-2">
        <Rates />
        <NextTechniques />
      </div>
      <LiveFeed />
    </div>
  );
}

function OpenAlerts() {
  const q = useOpenBySeverity();
  return (
    <Panel title="Open alerts by severity" id="open-alerts" className="kpi">
      {q.isPending ? (
        <Loading />
      ) : q.isError && !q.data ? (
        <ErrorState error={q.error} retry={() => void q.refetch()} />
      ) : (
        <ul className="sev-counts" aria-label="Open (new or acknowledged) alerts per severity">
          {SEVERITIES.map((s) => (
            <li key={s}>
              <Link to={`/alerts?severity=${s}&status=new`} className={`sev-count sev-${s}`} data-testid={`open-${s}`}>
                <span className="sev-count-n">{q.data?.[s] ?? 0}</span>
                <span className="sev-count-label">{s}</span>
              </Link>
            </li>
          ))}
        </ul>
      )}
    </Panel>
  );
}

function SitesOnline() {
  const q = useClients();
  const rates = useLive((s) => s.rates);
  let body;
  if (q.isPending) body = <Loading />;
  else if (q.isError) body = <ErrorState error={q.error} retry={() => void q.refetch()} />;
  else if (q.data.length > 0) {
    const online = q.data.filter((c) => c.status !== "offline").length;
    body = (
      <>
        <div className="kpi-big" data-testid="sites-online">
          {online} / {q.data.length}
        </div>
        <div className="muted">sites in the latest federation round</div>
      </>
    );
  } else if (rates.perFacility) {
    const last = rates.t.length - 1;
    const ids = Object.keys(rates.series);
    const online = ids.filter((k) => (rates.series[k]?.flowsPerS[last] ?? 0) > 0).length;
    body = (
      <>
        <div className="kpi-big" data-testid="sites-online">
          {online} / {ids.length}
        </div>
        <div className="muted">facilities sending flows</div>
      </>
    );
  } else {
    body = <Empty>No federation has run yet: sites appear when one does.</Empty>;
  }
  return (
    <Panel title="Sites online" id="sites" className="kpi">
      {body}
    </Panel>
  );
}

/** The newest of the REST answer and the live updates. */
function newestRound(a: FlRoundRow | undefined, b: FlRoundRow | null): FlRoundRow | undefined {
  if (!b) return a;
  if (!a) return b;
  return b.id >= a.id ? b : a;
}

function RoundCard() {
  const q = useRounds(1);
  const liveRound = useLive((s) => s.flRound);
  const round = newestRound(q.data?.[0], liveRound);
  let body;
  if (q.isPending && !round) body = <Loading />;
  else if (q.isError && !round) body = <ErrorState error={q.error} retry={() => void q.refetch()} />;
  else if (!round) body = <Empty>No federation round yet.</Empty>;
  else
    body = (
      <>
        <div className="kpi-big">Round {round.round_number}</div>
        <div>
          {round.status === "in-progress" && (
            <>
              <span className={`badge phase phase-${round.phase}`}>{round.phase}</span>{" "}
            </>
          )}
          <StatusBadge status={round.status} />
        </div>
        <Meter value={round.progress} label={`Round ${round.round_number} progress`} />
        <div className="muted">
          {round.clients_active} / {round.total_clients} clients
          {round.model_accuracy != null && <> · accuracy {fmtPct(round.model_accuracy, 1)}</>}
        </div>
      </>
    );
  return (
    <Panel title="Federation round" id="round" className="kpi">
      {body}
    </Panel>
  );
}

function PrivacyCard() {
  const q = usePrivacy();
  let body;
  if (q.isPending) body = <Loading />;
  else if (q.isError) body = <ErrorState error={q.error} retry={() => void q.refetch()} />;
  else {
    const p = q.data;
    if (p.epsilon == null)
      body = (
        <Empty>
          No privacy budget spent yet{p.budget != null ? ` (budget ε = ${fmtNum(p.budget)})` : ""}.
        </Empty>
      );
    else
      body = (
        <>
          <div className="kpi-big" data-testid="epsilon">
            ε {fmtNum(p.epsilon, 3)}
            {p.budget != null && <span className="muted"> / {fmtNum(p.budget, 2)}</span>}
          </div>
          {p.budget != null && p.budget > 0 && (
            <Meter value={(100 * p.epsilon) / p.budget} label="Share of the privacy budget spent" />
          )}
          <div className="muted">
            δ {p.delta ?? "—"} · {p.rounds} rounds accounted
          </div>
        </>
      );
  }
  return (
    <Panel title="Privacy budget (ε)" id="privacy" className="kpi">
      {body}
    </Panel>
  );
}

/** The pipeline's recent counter samples (the charts' history before the first push). */
function usePipelineHistory() {
  const q = useQuery({
    queryKey: keys.pipeline,
    queryFn: () => api.run(api.client.GET("/api/pipeline/counters")),
    // Once per visit of the page: the live feed carries the rest.
    staleTime: Infinity,
    gcTime: 0,
  });
  useEffect(() => {
    if (q.data) live.seedCounters(q.data.samples);
  }, [q.data]);
  return q;
}

function Rates() {
  const history = usePipelineHistory();
  const rates = useLive((s) => s.rates);
  const dashboard = useLive((s) => s.dashboard);
  const names = Object.keys(rates.series).sort();
  const noPipeline = history.isSuccess && history.data.running == null;
  if (rates.t.length < 1) {
    const every = history.data?.interval_s ?? 5;
    return (
      <Panel title="Traffic and anomalies per facility" id="rates">
        {noPipeline ? (
          <Empty>This server runs no pipeline: no live traffic counters.</Empty>
        ) : history.isError && !dashboard ? (
          <ErrorState error={history.error} retry={() => void history.refetch()} />
        ) : (
          <Loading what={`Rates follow with the next counters (every ${fmtNum(every, 0)} s)`} />
        )}
      </Panel>
    );
  }
  const series = (pick: (k: string) => (number | null)[]) =>
    names.map((k, i) => ({ label: k, data: pick(k), color: colorFor(i) }));
  return (
    <Panel title="Traffic and anomalies per facility" id="rates">
      <div data-testid="rates-facilities" data-facilities={names.join(",")} className="muted small">
        {names.length} {names.length === 1 ? "facility" : "facilities"}: {names.join(", ")}
      </div>
      <h3 className="chart-title">Flows per second</h3>
      <TimeChart
        label={`Flows per second per facility (${names.join(", ")}), last ${rates.t.length} samples`}
        t={rates.t}
        series={series((k) => rates.series[k]?.flowsPerS ?? [])}
        yFormat={(v) => fmtNum(v, 0)}
        height={180}
      />
      <h3 className="chart-title">Anomaly rate (share of flows judged anomalous)</h3>
      <TimeChart
        label={`Share of flows judged anomalous per facility (${names.join(", ")}), last ${rates.t.length} samples`}
        t={rates.t}
        series={series((k) => (rates.series[k]?.anomalyRate ?? []).map((v) => (v === null ? null : 100 * v)))}
        yFormat={(v) => `${fmtNum(v, 1)} %`}
        height={180}
      />
    </Panel>
  );
}

function NextTechniques() {
  const q = useQuery({
    queryKey: [...["predictions"], "overview"],
    queryFn: () => api.run(api.client.GET("/api/predictions", { params: { query: { limit: 5 } } })),
  });
  useEffect(() => {
    if (q.data) live.seedPredictions(q.data);
  }, [q.data]);
  const preds = useLive((s) => s.predictions).slice(0, 5);
  return (
    <Panel
      title="Latest predicted next techniques"
      id="next"
      actions={
        <Link to="/predictions" className="link-small">
          All predictions
        </Link>
      }
    >
      {preds.length === 0 ? (
        q.isPending ? (
          <Loading />
        ) : q.isError ? (
          <ErrorState error={q.error} retry={() => void q.refetch()} />
        ) : (
          <Empty>No prediction yet: they follow detected attacks.</Empty>
        )
      ) : (
        <ul className="pred-list">
          {preds.map((p) => (
            <PredictionItem key={p.id} p={p} />
          ))}
        </ul>
      )}
    </Panel>
  );
}

function PredictionItem({ p }: { p: PredictionRow }) {
  return (
    <li className="pred-item">
      <div className="pred-head">
        <span className="mono">{p.current_technique}</span> {p.current_technique_name}
        <span className="muted"> · {p.facility_id} · {fmtTime(p.timestamp)}</span>
      </div>
      <ol className="pred-next" aria-label="Predicted next techniques">
        {p.predicted_techniques.slice(0, 3).map((t) => (
          <li key={t.technique_id}>
            <span className="arrow" aria-hidden="true">
              →
            </span>{" "}
            <Link to={`/attack-graph?technique=${t.technique_id}`} className="mono">
              {t.technique_id}
            </Link>{" "}
            {t.technique_name} <strong>{fmtPct(t.probability)}</strong>
            {t.timeframe && <span className="muted"> ({t.timeframe})</span>}
          </li>
        ))}
      </ol>
    </li>
  );
}

function LiveFeed() {
  const q = useQuery({
    queryKey: [...keys.alerts, "feed-seed"],
    queryFn: () => api.run(api.client.GET("/api/alerts", { params: { query: { limit: 25 } } })),
    staleTime: Infinity,
  });
  useEffect(() => {
    if (q.data) live.seedFeed(q.data.alerts);
  }, [q.data]);
  const feed = useLive((s) => s.feed);
  const now = useNow(5000);
  return (
    <Panel
      title="Live alert feed"
      id="feed"
      actions={<span className="muted small">newest first · last {feed.length} kept</span>}
    >
      {feed.length === 0 ? (
        q.isPending ? (
          <Loading />
        ) : q.isError ? (
          <ErrorState error={q.error} retry={() => void q.refetch()} />
        ) : (
          <Empty>No alert yet. New alerts appear here as they are raised.</Empty>
        )
      ) : (
        <ol className="feed" aria-live="polite" aria-relevant="additions" data-testid="live-feed">
          {feed.slice(0, 30).map((a) => (
            <FeedItem key={a.id} a={a} now={now} />
          ))}
        </ol>
      )}
    </Panel>
  );
}

function FeedItem({ a, now }: { a: AlertRow; now: number }) {
  return (
    <li className={`feed-item sev-edge-${a.severity}`} data-alert-id={a.id}>
      <SeverityBadge severity={a.severity} />
      <Link to={`/alerts/${a.id}`} className="feed-title">
        {a.title}
      </Link>
      <span className="mono">{a.attack_type}</span>
      <span>{a.facility_id}</span>
      <StatusBadge status={a.status} />
      <time dateTime={a.last_seen} title={a.last_seen}>
        {fmtAgo(a.last_seen, now)}
      </time>
    </li>
  );
}
