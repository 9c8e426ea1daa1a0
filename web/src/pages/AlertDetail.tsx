import { useState } from "react";
import { Link, useLocation, useParams } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../services";
import { keys, useTacticNames } from "../lib/queries";
import { useLiveInvalidate, useSession } from "../lib/hooks";
import { hasRole } from "../auth/session";
import { errorMessage } from "../api/client";
import { fmtDateTime, fmtDuration, fmtNum, fmtPct, isTechniqueId } from "../lib/format";
import { Empty, ErrorState, Loading, Panel, QueryView } from "../components/states";
import { SeverityBadge, StatusBadge } from "../components/badges";
import { CategoryChart } from "../components/charts";
import type { AlertResponse, AlertStatus, FlowRecord } from "../api/types";

const ACTIONS: { status: AlertStatus; label: string }[] = [
  { status: "acknowledged", label: "Acknowledge" },
  { status: "resolved", label: "Resolve" },
  { status: "false-positive", label: "False positive" },
  { status: "new", label: "Reopen" },
];

export default function AlertDetail() {
  const { id = "" } = useParams();
  const loc = useLocation();
  const back = (loc.state as { back?: string } | null)?.back ?? "/alerts";
  const q = useQuery({
    queryKey: [...keys.alerts, "detail", id],
    queryFn: () => api.run(api.client.GET("/api/alerts/{id}", { params: { path: { id } } })),
  });
  useLiveInvalidate(["alert_updated"], [[...keys.alerts, "detail", id]], 1500);
  return (
    <div className="page page-alert">
      <p>
        <Link to={back}>← Back to alerts</Link>
      </p>
      <QueryView q={q} what="Loading the alert">
        {(a) => <Detail a={a} />}
      </QueryView>
    </div>
  );
}

function Detail({ a }: { a: AlertResponse }) {
  const tactics = useTacticNames();
  const ctx = (a.context_analysis ?? {}) as Record<string, unknown>;
  return (
    <>
      <header className="alert-head">
        <h1>{a.title}</h1>
        <div className="alert-badges">
          <SeverityBadge severity={a.severity} />
          <span data-testid="alert-status">
            <StatusBadge status={a.status} />
          </span>
          <span className="muted">{a.facility_id}</span>
        </div>
      </header>
      <div className="grid-2">
        <Panel title="Summary" id="summary">
          <dl className="facts">
            <dt>Technique</dt>
            <dd>
              {isTechniqueId(a.attack_type) ? (
                <Link to={`/attack-graph?technique=${a.attack_type}`} className="mono">
                  {a.attack_type}
                </Link>
              ) : (
                <span className="mono">{a.attack_type}</span>
              )}{" "}
              {a.attack_name !== a.attack_type && a.attack_name}
              {!isTechniqueId(a.attack_type) && <span className="muted"> (anomaly not classified as an ATT&CK technique)</span>}
            </dd>
            <dt>Tactics</dt>
            <dd>{a.tactic_ids.length ? a.tactic_ids.map((t) => tactics.get(t) ?? t).join(", ") : "—"}</dd>
            <dt>First seen</dt>
            <dd>{fmtDateTime(a.first_seen)}</dd>
            <dt>Last seen</dt>
            <dd>{fmtDateTime(a.last_seen)}</dd>
            <dt>Hosts</dt>
            <dd className="mono">
              {a.src_ip} → {a.dst_ip}
            </dd>
            <dt>Correlation</dt>
            <dd>
              {fmtPct(a.correlation_confidence)} {a.correlation_summary && <span className="muted">— {a.correlation_summary}</span>}
            </dd>
            <dt>Flows</dt>
            <dd>{a.flow_count}</dd>
            {typeof ctx.src_ip === "string" && ctx.src_ip !== a.src_ip && (
              <>
                <dt>Latest update hosts</dt>
                <dd className="mono">
                  {String(ctx.src_ip)} → {String(ctx.dst_ip ?? "")}
                </dd>
              </>
            )}
          </dl>
          {a.description && <p className="description">{a.description}</p>}
        </Panel>
        <Actions a={a} />
      </div>
      <Evidence a={a} />
      <div className="grid-2">
        <ModelVersions a={a} />
        <NextSteps a={a} />
      </div>
      <Flows id={a.id} count={a.flow_count} />
      <Audit id={a.id} />
    </>
  );
}

function Actions({ a }: { a: AlertResponse }) {
  const { session } = useSession();
  const qc = useQueryClient();
  const [done, setDone] = useState<string | null>(null);
  const m = useMutation({
    mutationFn: (status: AlertStatus) =>
      api.run(api.client.PUT("/api/alerts/{id}/status", { params: { path: { id: a.id } }, body: { status } })),
    onSuccess: (row) => {
      setDone(`Status set to ${row.status}.`);
      void qc.invalidateQueries({ queryKey: keys.alerts });
    },
  });
  const can = hasRole(session?.role, "analyst");
  return (
    <Panel title="Actions" id="actions">
      {!can ? (
        <p className="muted">
          Your role ({session?.role ?? "none"}) can read alerts; analysts and admins change their status.
        </p>
      ) : (
        <>
          <div className="btn-row" role="group" aria-label="Set the alert's status">
            {ACTIONS.map((x) => (
              <button
                key={x.status}
                type="button"
                className={`btn btn-${x.status}`}
                disabled={m.isPending || a.status === x.status}
                onClick={() => {
                  setDone(null);
                  m.mutate(x.status);
                }}
              >
                {x.label}
              </button>
            ))}
          </div>
          <div role="status" aria-live="polite" className="action-result">
            {m.isPending && "Saving…"}
            {done && !m.isPending && done}
          </div>
          {m.isError && (
            <p role="alert" className="error-text">
              Could not change the status: {errorMessage(m.error)}
            </p>
          )}
        </>
      )}
    </Panel>
  );
}

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function Evidence({ a }: { a: AlertResponse }) {
  const sources = a.sources;
  const feats = a.top_features.slice(0, 12);
  return (
    <Panel title="Evidence" id="evidence">
      <div className="grid-2">
        <div>
          <h3>Detector scores</h3>
          {sources.length === 0 ? (
            <Empty>No detector source recorded.</Empty>
          ) : (
            <>
              <CategoryChart
                label="Confidence of each detector and the classifier"
                kind="bar"
                horizontal
                labels={sources.map((s) => s.model_name)}
                series={[{ label: "confidence", data: sources.map((s) => s.confidence), color: "#56b4e9" }]}
                yMin={0}
                yMax={1}
                yFormat={(v) => fmtPct(v)}
                height={Math.max(120, 34 * sources.length + 40)}
              />
              <table className="table table-compact" data-testid="sources-table">
                <thead>
                  <tr>
                    <th scope="col">Layer</th>
                    <th scope="col">Model</th>
                    <th scope="col" className="num">
                      Confidence
                    </th>
                    <th scope="col" className="num">
                      Score / threshold
                    </th>
                    <th scope="col">Evidence</th>
                  </tr>
                </thead>
                <tbody>
                  {sources.map((s) => {
                    const ce = (s.context_evidence ?? {}) as Record<string, unknown>;
                    const score = num(ce.score);
                    const thr = num(ce.threshold);
                    return (
                      <tr key={s.id}>
                        <td>{s.layer}</td>
                        <td>
                          {s.model_name}
                          {s.model_version && <div className="muted small mono">{s.model_version}</div>}
                        </td>
                        <td className="num">{fmtPct(s.confidence)}</td>
                        <td className="num">
                          {score !== null ? `${fmtNum(score, 3)} / ${thr !== null ? fmtNum(thr, 3) : "—"}` : "—"}
                        </td>
                        <td className="evidence-text">{s.evidence}</td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </>
          )}
        </div>
        <div>
          <h3>Top contributing features</h3>
          {feats.length === 0 ? (
            <Empty>The detectors gave no feature explanation for this alert (rule findings explain it instead).</Empty>
          ) : (
            <>
              <CategoryChart
                label="Share of the anomaly score explained by each feature"
                kind="bar"
                horizontal
                labels={feats.map((f) => `${f.name} (${f.detector})`)}
                series={[{ label: "contribution", data: feats.map((f) => f.contribution ?? 0), color: "#e69f00" }]}
                yMin={0}
                yFormat={(v) => fmtPct(v)}
                height={Math.max(140, 28 * feats.length + 40)}
              />
              <table className="table table-compact" data-testid="features-table">
                <thead>
                  <tr>
                    <th scope="col">Feature</th>
                    <th scope="col">Detector</th>
                    <th scope="col" className="num">
                      Value
                    </th>
                    <th scope="col" className="num">
                      Contribution
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {feats.map((f, i) => (
                    <tr key={`${f.detector}-${f.name}-${i}`}>
                      <td className="mono">{f.name}</td>
                      <td>{f.detector}</td>
                      <td className="num">{fmtNum(f.value ?? null, 3)}</td>
                      <td className="num">{fmtPct(f.contribution ?? null, 1)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
        </div>
      </div>
    </Panel>
  );
}

function ModelVersions({ a }: { a: AlertResponse }) {
  const entries = Object.entries(a.model_versions ?? {});
  return (
    <Panel title="Model versions" id="models">
      {entries.length === 0 ? (
        <Empty>No model version recorded.</Empty>
      ) : (
        <table className="table table-compact">
          <thead>
            <tr>
              <th scope="col">Model</th>
              <th scope="col">Version</th>
            </tr>
          </thead>
          <tbody>
            {entries.map(([k, v]) => (
              <tr key={k}>
                <td>{k}</td>
                <td className="mono">{v || "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Panel>
  );
}

function NextSteps({ a }: { a: AlertResponse }) {
  const preds = a.predictions;
  const latest = preds[preds.length - 1];
  return (
    <Panel title="Predicted next steps" id="next-steps">
      {!latest ? (
        <Empty>No prediction was made for this alert.</Empty>
      ) : (
        <>
          <p className="muted small">
            From {latest.current_technique} by {latest.model} at {fmtDateTime(latest.timestamp)}
            {preds.length > 1 && ` (newest of ${preds.length})`}
            {latest.validated && " · validated"}
          </p>
          <ol className="pred-next">
            {latest.predicted_techniques.map((t) => (
              <li key={t.technique_id}>
                <Link to={`/attack-graph?technique=${t.technique_id}`} className="mono">
                  {t.technique_id}
                </Link>{" "}
                {t.technique_name} <strong>{fmtPct(t.probability)}</strong>
                {t.timeframe && <span className="muted"> ({t.timeframe})</span>}
              </li>
            ))}
          </ol>
        </>
      )}
    </Panel>
  );
}

function Flows({ id, count }: { id: string; count: number }) {
  const q = useQuery({
    queryKey: [...keys.alerts, "flows", id],
    queryFn: async () =>
      (await api.run(api.client.GET("/api/alerts/{id}/flows", { params: { path: { id } } }))) as unknown as FlowRecord[],
  });
  return (
    <Panel title={`Underlying flows (${count})`} id="flows">
      <QueryView q={q} what="Loading flows" empty="No flow record is stored for this alert." isEmpty={(d) => d.length === 0}>
        {(flows) => (
          <div className="table-wrap">
            <table className="table table-compact" data-testid="flows-table">
              <thead>
                <tr>
                  <th scope="col">Start</th>
                  <th scope="col">Source</th>
                  <th scope="col">Destination</th>
                  <th scope="col">Protocol</th>
                  <th scope="col" className="num">
                    Packets
                  </th>
                  <th scope="col" className="num">
                    Bytes
                  </th>
                  <th scope="col" className="num">
                    Duration
                  </th>
                  <th scope="col">Ground truth</th>
                </tr>
              </thead>
              <tbody>
                {flows.slice(0, 200).map((f) => (
                  <tr key={f.flow_id}>
                    <td>{fmtDateTime(f.ts_start)}</td>
                    <td className="mono">
                      {f.src_ip}:{f.src_port}
                    </td>
                    <td className="mono">
                      {f.dst_ip}:{f.dst_port}
                    </td>
                    <td>
                      {f.transport}
                      {f.ics && ` / ${f.ics.protocol}`}
                    </td>
                    <td className="num">{(f.fwd?.packets ?? 0) + (f.bwd?.packets ?? 0)}</td>
                    <td className="num">{(f.fwd?.bytes ?? 0) + (f.bwd?.bytes ?? 0)}</td>
                    <td className="num">{fmtDuration(f.duration_ms)}</td>
                    <td>{f.ground_truth?.label ?? "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {flows.length > 200 && <p className="muted small">First 200 of {flows.length} flows shown.</p>}
          </div>
        )}
      </QueryView>
    </Panel>
  );
}

function Audit({ id }: { id: string }) {
  const { session } = useSession();
  const can = hasRole(session?.role, "analyst");
  const q = useQuery({
    queryKey: [...keys.alerts, "audit", id],
    queryFn: () => api.run(api.client.GET("/api/alerts/{id}/audit", { params: { path: { id } } })),
    enabled: can,
  });
  return (
    <Panel title="Audit trail" id="audit">
      {!can ? (
        <p className="muted">The audit trail is shown to analysts and admins.</p>
      ) : q.isPending ? (
        <Loading />
      ) : q.isError ? (
        <ErrorState error={q.error} retry={() => void q.refetch()} />
      ) : q.data.entries.length === 0 ? (
        <Empty>Nobody has changed this alert yet.</Empty>
      ) : (
        <table className="table table-compact" data-testid="audit-table">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">Role</th>
              <th scope="col">Request</th>
              <th scope="col">Change</th>
              <th scope="col" className="num">
                Result
              </th>
            </tr>
          </thead>
          <tbody>
            {q.data.entries.map((e) => (
              <tr key={e.id} data-audit-id={e.id}>
                <td>{fmtDateTime(e.timestamp)}</td>
                <td>{e.actor}</td>
                <td>{e.role}</td>
                <td className="mono">
                  {e.method} {e.path}
                </td>
                <td className="mono small">{auditDetail(e.detail)}</td>
                <td className="num">{e.status}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {q.data && q.data.total > q.data.entries.length && (
        <p className="muted small">
          {q.data.entries.length} of {q.data.total} entries shown.
        </p>
      )}
    </Panel>
  );
}

function auditDetail(d: unknown): string {
  if (d === null || d === undefined) return "";
  if (typeof d === "object") {
    const req = (d as Record<string, unknown>).request;
    if (req !== undefined && req !== null) return JSON.stringify(req).slice(0, 200);
    const s = JSON.stringify(d);
    return s === "{}" ? "" : s.slice(0, 200);
  }
  return String(d).slice(0, 200);
}
