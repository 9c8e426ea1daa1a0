import { useId, useMemo } from "react";
import { Link, useSearchParams } from "react-router";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../services";
import { keys } from "../lib/queries";
import { useLiveInvalidate, useRoom, useSession } from "../lib/hooks";
import { hasRole } from "../auth/session";
import { errorMessage } from "../api/client";
import { fmtDateTime, fmtPct, fmtTime } from "../lib/format";
import { outcomes, precisionOverTime, type Outcome } from "../lib/precision";
import { Empty, ErrorState, Loading, Panel } from "../components/states";
import { CategoryChart } from "../components/charts";
import type { PredictionRow } from "../api/types";

const PAGE = 25;

export default function Predictions() {
  useRoom("attack-graph");
  useLiveInvalidate(["prediction_created", "prediction_updated"], [keys.predictions], 3000);
  const [sp, setSp] = useSearchParams();
  const validated = sp.get("validated") ?? "";
  const page = Math.max(1, Number(sp.get("page") ?? "1") || 1);
  const selId = useId();
  const query = {
    limit: PAGE,
    offset: (page - 1) * PAGE,
    validated: validated === "" ? undefined : validated === "true",
  };
  const list = useQuery({
    queryKey: [...keys.predictions, "list", query],
    queryFn: async () => {
      const { data, response } = await api.runWithResponse(api.client.GET("/api/predictions", { params: { query } }));
      return { rows: data, total: Number(response.headers.get("x-total-count") ?? data.length) };
    },
    placeholderData: keepPreviousData,
  });
  const judged = useJudged();
  const set = (k: string, v: string) => {
    const next = new URLSearchParams(sp);
    if (v) next.set(k, v);
    else next.delete(k);
    if (k !== "page") next.delete("page");
    setSp(next, { replace: true });
  };
  const pages = list.data ? Math.max(1, Math.ceil(list.data.total / PAGE)) : 1;
  return (
    <div className="page page-predictions">
      <h1>Predictions</h1>
      <Precision judged={judged} />
      <Panel
        title="Predictions"
        id="list"
        actions={
          <label htmlFor={selId} className="inline-field">
            Validation{" "}
            <select id={selId} value={validated} onChange={(e) => set("validated", e.target.value)}>
              <option value="">all</option>
              <option value="true">validated</option>
              <option value="false">not validated</option>
            </select>
          </label>
        }
      >
        {list.isPending ? (
          <Loading what="Loading predictions" />
        ) : list.isError && !list.data ? (
          <ErrorState error={list.error} retry={() => void list.refetch()} />
        ) : list.data.rows.length === 0 ? (
          <Empty>{validated ? "No prediction matches this filter." : "No prediction yet: they follow detected attacks."}</Empty>
        ) : (
          <>
            <p className="muted" role="status">
              {list.data.total} prediction{list.data.total === 1 ? "" : "s"}
            </p>
            <div className="table-wrap">
              <table className="table" data-testid="predictions-table">
                <thead>
                  <tr>
                    <th scope="col">Time</th>
                    <th scope="col">Facility</th>
                    <th scope="col">After</th>
                    <th scope="col">Predicted next (top 3)</th>
                    <th scope="col">Outcome</th>
                    <th scope="col">Validation</th>
                  </tr>
                </thead>
                <tbody>
                  {list.data.rows.map((p) => (
                    <Row key={p.id} p={p} outcome={judged.outcomes?.get(p.id)} />
                  ))}
                </tbody>
              </table>
            </div>
            <nav className="pager" aria-label="Pages of predictions">
              <button type="button" className="btn" disabled={page <= 1} onClick={() => set("page", String(page - 1))}>
                ← Previous
              </button>
              <span>
                Page {page} of {pages}
              </span>
              <button type="button" className="btn" disabled={page >= pages} onClick={() => set("page", String(page + 1))}>
                Next →
              </button>
            </nav>
          </>
        )}
      </Panel>
    </div>
  );
}

/** The latest predictions and alerts, and each prediction's outcome. */
function useJudged() {
  const preds = useQuery({
    queryKey: [...keys.predictions, "judge"],
    queryFn: () => api.run(api.client.GET("/api/predictions", { params: { query: { limit: 500 } } })),
    refetchInterval: 60_000,
  });
  const alerts = useQuery({
    queryKey: [...keys.alerts, "judge"],
    queryFn: () => api.run(api.client.GET("/api/alerts", { params: { query: { limit: 1000 } } })),
    refetchInterval: 60_000,
  });
  const res = useMemo(
    () => (preds.data && alerts.data ? outcomes(preds.data, alerts.data.alerts) : undefined),
    [preds.data, alerts.data],
  );
  return { preds, alerts, outcomes: res };
}

function Precision({ judged }: { judged: ReturnType<typeof useJudged> }) {
  const { preds, alerts, outcomes: res } = judged;
  const points = useMemo(() => (preds.data && res ? precisionOverTime(preds.data, res) : []), [preds.data, res]);
  const counts = { hit: 0, miss: 0, pending: 0 };
  for (const o of res?.values() ?? []) counts[o.kind] += 1;
  const validated = preds.data?.filter((p) => p.validated).length ?? 0;
  const overall = counts.hit + counts.miss ? counts.hit / (counts.hit + counts.miss) : null;
  return (
    <Panel title="precision@3 over time" id="precision">
      <p className="muted small">
        A prediction is a hit when the next technique alerted at its facility (other than the one it followed) is among its top
        three. Computed over the latest {preds.data?.length ?? 0} predictions and {alerts.data?.alerts.length ?? 0} alerts.
      </p>
      {preds.isPending || alerts.isPending ? (
        <Loading />
      ) : preds.isError || alerts.isError ? (
        <ErrorState error={preds.error ?? alerts.error} retry={() => void (preds.refetch(), alerts.refetch())} />
      ) : (
        <>
          <ul className="stat-row">
            <li>
              <strong data-testid="precision-at-3">{fmtPct(overall, 1)}</strong> precision@3
            </li>
            <li>
              <strong>{counts.hit}</strong> hits
            </li>
            <li>
              <strong>{counts.miss}</strong> misses
            </li>
            <li>
              <strong>{counts.pending}</strong> awaiting a next step
            </li>
            <li>
              <strong>{validated}</strong> validated by analysts
            </li>
          </ul>
          {points.length === 0 ? (
            <Empty>No prediction can be judged yet: none has been followed by another technique at its facility.</Empty>
          ) : (
            <CategoryChart
              label="precision@3 per time bucket and cumulative"
              labels={points.map((p) => fmtTime(p.t))}
              yMin={0}
              yMax={1}
              yFormat={(v) => fmtPct(v)}
              series={[
                { label: "precision@3 in the bucket", data: points.map((p) => p.precision), color: "#5fd3a5" },
                { label: "cumulative", data: points.map((p) => p.cumulative), color: "#56b4e9", dashed: true },
              ]}
            />
          )}
        </>
      )}
    </Panel>
  );
}

function Row({ p, outcome }: { p: PredictionRow; outcome: Outcome | undefined }) {
  const { session } = useSession();
  const qc = useQueryClient();
  const can = hasRole(session?.role, "analyst");
  const m = useMutation({
    mutationFn: (v: boolean) =>
      api.run(api.client.POST("/api/predictions/{id}/validate", { params: { path: { id: p.id } }, body: { validated: v } })),
    onSuccess: () => void qc.invalidateQueries({ queryKey: keys.predictions }),
  });
  return (
    <tr data-prediction-id={p.id}>
      <td>{fmtDateTime(p.timestamp)}</td>
      <td>{p.facility_id}</td>
      <td>
        <Link to={`/alerts/${p.alert_id}`} className="mono">
          {p.current_technique}
        </Link>{" "}
        {p.current_technique_name}
      </td>
      <td>
        <ol className="pred-next compact">
          {p.predicted_techniques.slice(0, 3).map((t) => (
            <li key={t.technique_id}>
              <span className="mono">{t.technique_id}</span> {t.technique_name} <strong>{fmtPct(t.probability)}</strong>
            </li>
          ))}
        </ol>
      </td>
      <td>
        {!outcome ? (
          "—"
        ) : outcome.kind === "pending" ? (
          <span className="muted">pending</span>
        ) : (
          <span className={`badge outcome-${outcome.kind}`}>
            {outcome.kind} ({outcome.actual})
          </span>
        )}
      </td>
      <td>
        <span className={`badge ${p.validated ? "status-resolved" : "status-new"}`}>
          {p.validated ? `validated ${p.validation_time ? fmtTime(p.validation_time) : ""}` : "not validated"}
        </span>
        {can && (
          <button
            type="button"
            className="btn btn-small"
            disabled={m.isPending}
            onClick={() => m.mutate(!p.validated)}
            aria-label={`${p.validated ? "Clear the validation of" : "Validate"} the prediction after ${p.current_technique} at ${fmtDateTime(p.timestamp)}`}
          >
            {p.validated ? "Unvalidate" : "Validate"}
          </button>
        )}
        {m.isError && (
          <div role="alert" className="error-text small">
            {errorMessage(m.error)}
          </div>
        )}
      </td>
    </tr>
  );
}
