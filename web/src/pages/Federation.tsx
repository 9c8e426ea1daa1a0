import { useEffect, useMemo, useState } from "react";
import { useMutation, useQueries, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../services";
import { keys, usePrivacy, useRounds } from "../lib/queries";
import { useLive, useLiveInvalidate, useRoom, useSession } from "../lib/hooks";
import { hasRole } from "../auth/session";
import { errorMessage } from "../api/client";
import { fmtDateTime, fmtDuration, fmtNum, fmtPct } from "../lib/format";
import { strategyLabel, strategyName } from "../lib/federation";
import { Empty, ErrorState, Loading, Panel } from "../components/states";
import { Meter, StatusBadge } from "../components/badges";
import { CategoryChart, colorFor, type Series } from "../components/charts";
import type { FlClientRow, FlRoundRow, PrivacyEntry, PrivacyMetrics, RoundDetail } from "../api/types";

/** Rounds whose clients are charted. */
const CHART_ROUNDS = 20;

export default function Federation() {
  useRoom("fl-status");
  useLiveInvalidate(["fl_progress"], [keys.rounds, keys.privacy, keys.clients, ["fl", "round"]], 2000);
  const rounds = useRounds(50);
  const privacy = usePrivacy();
  const [picked, setPicked] = useState<number | null>(null);
  const list = rounds.data ?? [];
  const selected = list.find((r) => r.id === picked) ?? list[0];
  // The accountant's ledger entry is written just after its round completes: when a newer
  // completed round shows up, read the ledger again.
  const lastDone = list.find((r) => r.status === "completed")?.id;
  const refetchPrivacy = privacy.refetch;
  useEffect(() => {
    if (lastDone !== undefined) void refetchPrivacy();
  }, [lastDone, refetchPrivacy]);

  return (
    <div className="page page-federation">
      <h1>Federation</h1>
      <div className="grid-2">
        <Settings privacy={privacy.data} />
        <Trigger />
      </div>
      <Panel title="Rounds" id="rounds">
        {rounds.isPending ? (
          <Loading what="Loading rounds" />
        ) : rounds.isError ? (
          <ErrorState error={rounds.error} retry={() => void rounds.refetch()} />
        ) : list.length === 0 ? (
          <Empty>No federated-learning round has run yet. Rounds appear here as soon as the federation starts one.</Empty>
        ) : (
          <Timeline rounds={list} selected={selected?.id} onPick={setPicked} />
        )}
      </Panel>
      {selected && <Sites round={selected} />}
      {list.length > 0 && <PerRound rounds={list.slice(0, CHART_ROUNDS)} />}
      <Ledger q={privacy} />
    </div>
  );
}

function Settings({ privacy }: { privacy: PrivacyMetrics | undefined }) {
  const f = privacy?.federation ?? null;
  const entries = (privacy?.ledger ?? []).filter((e) => e.site_id == null && (!f || e.federation_id === f.id));
  const last = entries[entries.length - 1];
  const dp = f?.dp ?? null;
  return (
    <Panel title="Strategy and differential privacy" id="settings">
      <dl className="facts">
        <dt>Aggregation strategy</dt>
        <dd data-testid="fl-strategy" data-strategy={f?.strategy ?? ""}>
          {f ? strategyLabel(f) : <span className="muted">no federation has recorded its configuration yet</span>}
        </dd>
        {f && (
          <>
            <dt>Aggregate</dt>
            <dd>
              {privacy?.aggregation === "dp-clipped-mean"
                ? "unweighted mean of clipped updates plus Gaussian noise (DP on; the strategy selects the sites)"
                : strategyName(f.strategy)}
            </dd>
            <dt>Local training</dt>
            <dd>
              {f.local_epochs} {f.local_epochs === 1 ? "epoch" : "epochs"} · learning rate {f.learning_rate} · {fmtPct(f.fraction_fit, 0)}{" "}
              of {f.total_sites} sites per round
            </dd>
          </>
        )}
        <dt>Differential privacy</dt>
        <dd data-testid="fl-dp">
          {dp ? `client-level, ${dp.mode} noise` : f ? "off" : "—"}
        </dd>
        <dt>Privacy budget (ε)</dt>
        <dd>{privacy?.budget != null ? fmtNum(privacy.budget, 3) : "none configured"}</dd>
        <dt>Spent (ε)</dt>
        <dd data-testid="epsilon-spent">{privacy?.epsilon != null ? fmtNum(privacy.epsilon, 4) : "nothing yet"}</dd>
        <dt>Remaining (ε)</dt>
        <dd>{privacy?.remaining != null ? fmtNum(privacy.remaining, 4) : "—"}</dd>
        <dt>δ</dt>
        <dd>{dp?.delta ?? privacy?.delta ?? last?.delta ?? "—"}</dd>
        <dt>Noise multiplier σ</dt>
        <dd>{dp ? fmtNum(dp.noise_multiplier, 3) : last ? fmtNum(last.noise_multiplier, 3) : "—"}</dd>
        <dt>Clipping norm C</dt>
        <dd>{dp ? fmtNum(dp.clip_norm, 3) : last ? fmtNum(last.clip_norm, 3) : "—"}</dd>
        <dt>Sampling rate q (last round)</dt>
        <dd>{last ? fmtNum(last.sampling_rate, 3) : "—"}</dd>
        <dt>Federation</dt>
        <dd className="mono">{f?.id ?? last?.federation_id ?? "—"}</dd>
      </dl>
    </Panel>
  );
}

function Trigger() {
  const { session } = useSession();
  const qc = useQueryClient();
  const m = useMutation({
    mutationFn: () => api.run(api.client.POST("/api/fl/rounds/trigger")),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ["fl"] }),
  });
  const admin = hasRole(session?.role, "admin");
  return (
    <Panel title="Start a round" id="trigger">
      {!admin ? (
        <p className="muted">Only admins start federation rounds (you are {session?.role ?? "not logged in"}).</p>
      ) : (
        <>
          <p className="muted small">Starts a round now, outside the federation's schedule. Refused while a round runs or when the privacy budget is spent.</p>
          <button type="button" className="btn btn-primary" disabled={m.isPending} onClick={() => m.mutate()}>
            {m.isPending ? "Starting…" : "Trigger a round"}
          </button>
          <div role="status" aria-live="polite">
            {m.isSuccess && <p>Round started (row {m.data.round_id}).</p>}
          </div>
          {m.isError && (
            <p role="alert" className="error-text">
              Could not start a round: {errorMessage(m.error)}
            </p>
          )}
        </>
      )}
    </Panel>
  );
}

function duration(r: FlRoundRow): number | null {
  if (!r.end_time) return null;
  return Date.parse(r.end_time) - Date.parse(r.start_time);
}

function Timeline({ rounds, selected, onPick }: { rounds: FlRoundRow[]; selected?: number; onPick: (id: number) => void }) {
  const ordered = [...rounds].reverse();
  return (
    <>
      <ol className="timeline" aria-label="Rounds, oldest to newest">
        {ordered.map((r) => (
          <li key={r.id}>
            <button
              type="button"
              className={`tl-round tl-${r.status}${r.id === selected ? " selected" : ""}`}
              aria-pressed={r.id === selected}
              aria-label={`Round ${r.round_number}: ${r.status}, ${r.phase}${r.epsilon != null ? `, ε ${fmtNum(r.epsilon, 3)}` : ""}`}
              title={`Round ${r.round_number} · ${r.status} · ${r.phase}`}
              onClick={() => onPick(r.id)}
            >
              {r.round_number}
            </button>
          </li>
        ))}
      </ol>
      <div className="table-wrap">
        <table className="table table-compact" data-testid="rounds-table">
          <thead>
            <tr>
              <th scope="col">Round</th>
              <th scope="col">Status</th>
              <th scope="col">Phase</th>
              <th scope="col">Started</th>
              <th scope="col" className="num">
                Duration
              </th>
              <th scope="col" className="num">
                Clients
              </th>
              <th scope="col" className="num">
                Accuracy
              </th>
              <th scope="col" className="num">
                ε
              </th>
            </tr>
          </thead>
          <tbody>
            {rounds.map((r) => (
              <tr
                key={r.id}
                data-round={r.round_number}
                data-status={r.status}
                className={r.id === selected ? "row-selected" : undefined}
              >
                <td>
                  <button type="button" className="linkish" onClick={() => onPick(r.id)}>
                    Round {r.round_number}
                  </button>
                </td>
                <td>
                  <StatusBadge status={r.status} />
                </td>
                <td>{r.phase}</td>
                <td>{fmtDateTime(r.start_time)}</td>
                <td className="num">{r.end_time ? fmtDuration(duration(r)) : `${r.progress}%`}</td>
                <td className="num">
                  {r.clients_active} / {r.total_clients}
                </td>
                <td className="num">{fmtPct(r.model_accuracy ?? null, 1)}</td>
                <td className="num" data-testid="round-epsilon">
                  {r.epsilon != null ? fmtNum(r.epsilon, 4) : "—"}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function Sites({ round }: { round: FlRoundRow }) {
  const q = useQuery({
    queryKey: ["fl", "round", round.id],
    queryFn: () => api.run(api.client.GET("/api/fl/rounds/{id}", { params: { path: { id: round.id } } })),
    refetchInterval: round.status === "in-progress" ? 5000 : false,
  });
  const liveClients = useLive((s) => s.flClients);
  const clients = useMemo(() => {
    const m = new Map<string, FlClientRow>((q.data?.clients ?? []).map((c) => [c.id, c]));
    for (const c of liveClients) if (c.round_id === round.id) m.set(c.id, c);
    return [...m.values()].sort((a, b) => a.name.localeCompare(b.name));
  }, [q.data, liveClients, round.id]);
  return (
    <Panel title={`Sites in round ${round.round_number}`} id="sites">
      {q.isPending ? (
        <Loading />
      ) : q.isError ? (
        <ErrorState error={q.error} retry={() => void q.refetch()} />
      ) : clients.length === 0 ? (
        <Empty>No site has reported in this round yet.</Empty>
      ) : (
        <table className="table table-compact" data-testid="sites-table">
          <thead>
            <tr>
              <th scope="col">Site</th>
              <th scope="col">Status</th>
              <th scope="col">Progress</th>
              <th scope="col" className="num">
                Epoch
              </th>
              <th scope="col" className="num">
                Loss
              </th>
              <th scope="col" className="num">
                Accuracy
              </th>
              <th scope="col">Last update</th>
            </tr>
          </thead>
          <tbody>
            {clients.map((c) => (
              <tr key={c.id}>
                <td>{c.name}</td>
                <td>
                  <StatusBadge status={c.status} />
                </td>
                <td>
                  <Meter value={c.progress} label={`${c.name} progress`} />
                </td>
                <td className="num">
                  {c.current_epoch} / {c.total_epochs}
                </td>
                <td className="num">{fmtNum(c.loss ?? null, 4)}</td>
                <td className="num">{fmtPct(c.accuracy ?? null, 1)}</td>
                <td>{fmtDateTime(c.last_update)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Panel>
  );
}

function PerRound({ rounds }: { rounds: FlRoundRow[] }) {
  const ordered = [...rounds].reverse();
  const details = useQueries({
    queries: ordered.map((r) => ({
      queryKey: ["fl", "round", r.id],
      queryFn: () => api.run(api.client.GET("/api/fl/rounds/{id}", { params: { path: { id: r.id } } })),
      staleTime: r.status === "in-progress" ? 5000 : Infinity,
    })),
  });
  const loaded = details.map((d) => d.data).filter((d): d is RoundDetail => !!d);
  const sites = [...new Set(loaded.flatMap((d) => d.clients.map((c) => c.name)))].sort();
  const labels = ordered.map((r) => `R${r.round_number}`);
  const metric = (site: string, pick: (c: FlClientRow) => number | null | undefined) =>
    ordered.map((r) => {
      const d = loaded.find((x) => x.id === r.id);
      const c = d?.clients.find((x) => x.name === site);
      return c ? (pick(c) ?? null) : null;
    });
  const pending = details.some((d) => d.isPending);
  const failed = details.find((d) => d.isError);
  return (
    <Panel title={`Loss and accuracy per round (last ${ordered.length})`} id="per-round">
      {failed && <ErrorState error={failed.error} retry={() => void failed.refetch()} />}
      {pending && loaded.length === 0 ? (
        <Loading />
      ) : sites.length === 0 && ordered.every((r) => r.model_accuracy == null) ? (
        <Empty>No site metrics recorded yet.</Empty>
      ) : (
        <div className="grid-2">
          <div>
            <h3 className="chart-title">Local training loss per site</h3>
            <CategoryChart
              label="Training loss of each site per round"
              labels={labels}
              series={sites.map((s, i) => ({ label: s, data: metric(s, (c) => c.loss), color: colorFor(i) }))}
              yFormat={(v) => fmtNum(v, 3)}
            />
          </div>
          <div>
            <h3 className="chart-title">Accuracy per site and of the global model</h3>
            <CategoryChart
              label="Accuracy of each site and of the aggregated model per round"
              labels={labels}
              yMin={0}
              yMax={1}
              yFormat={(v) => fmtPct(v)}
              series={[
                ...sites.map((s, i) => ({ label: s, data: metric(s, (c) => c.accuracy), color: colorFor(i) })),
                { label: "global model", data: ordered.map((r) => r.model_accuracy ?? null), color: "#ffffff", dashed: true },
              ]}
            />
          </div>
        </div>
      )}
    </Panel>
  );
}

function Ledger({ q }: { q: ReturnType<typeof usePrivacy> }) {
  return (
    <Panel title="Privacy ledger" id="ledger">
      {q.isPending ? (
        <Loading />
      ) : q.isError ? (
        <ErrorState error={q.error} retry={() => void q.refetch()} />
      ) : q.data.ledger.length === 0 ? (
        <Empty>The privacy accountant has recorded nothing yet: no differentially private round has completed.</Empty>
      ) : (
        <LedgerBody p={q.data} />
      )}
    </Panel>
  );
}

function LedgerBody({ p }: { p: PrivacyMetrics }) {
  // The federation-wide entries of the latest federation; ε there is cumulative (what
  // the accountant has spent up to and including that round).
  const all = p.ledger.filter((e) => e.site_id == null);
  const latestFed = all.reduce<PrivacyEntry | undefined>(
    (a, e) => (!a || Date.parse(e.recorded_at) >= Date.parse(a.recorded_at) ? e : a),
    undefined,
  )?.federation_id;
  const entries = all.filter((e) => e.federation_id === latestFed).sort((a, b) => a.round_number - b.round_number);
  const perRound = entries.map((e, i) => e.epsilon - (i > 0 ? (entries[i - 1]?.epsilon ?? 0) : 0));
  const labels = entries.map((e) => `R${e.round_number}`);
  const series: Series[] = [
    { label: "cumulative ε", data: entries.map((e) => e.epsilon), color: "#56b4e9" },
    { label: "ε spent in the round", data: perRound, color: "#e69f00" },
  ];
  const budget = p.budget;
  if (budget != null) series.push({ label: "budget", data: entries.map(() => budget), color: "#ff4d4f", dashed: true });
  const siteEntries = p.ledger.filter((e) => e.site_id != null);
  return (
    <>
      <CategoryChart label="Privacy loss ε per round, cumulative, against the budget" labels={labels} series={series} yMin={0} yFormat={(v) => fmtNum(v, 3)} />
      <div className="table-wrap">
        <table className="table table-compact" data-testid="ledger-table">
          <caption className="sr-only">Privacy ledger of federation {latestFed}</caption>
          <thead>
            <tr>
              <th scope="col">Round</th>
              <th scope="col" className="num">
                ε (cumulative)
              </th>
              <th scope="col" className="num">
                ε this round
              </th>
              <th scope="col" className="num">
                δ
              </th>
              <th scope="col" className="num">
                σ
              </th>
              <th scope="col" className="num">
                C
              </th>
              <th scope="col" className="num">
                q
              </th>
              <th scope="col">Recorded</th>
            </tr>
          </thead>
          <tbody>
            {entries
              .map((e, i) => ({ e, d: perRound[i] }))
              .reverse()
              .map(({ e, d }) => (
                <tr key={`${e.federation_id}-${e.round_number}`}>
                  <td>{e.round_number}</td>
                  <td className="num">{fmtNum(e.epsilon, 4)}</td>
                  <td className="num">{fmtNum(d ?? null, 4)}</td>
                  <td className="num">{e.delta}</td>
                  <td className="num">{fmtNum(e.noise_multiplier, 3)}</td>
                  <td className="num">{fmtNum(e.clip_norm, 3)}</td>
                  <td className="num">{fmtNum(e.sampling_rate, 3)}</td>
                  <td>{fmtDateTime(e.recorded_at)}</td>
                </tr>
              ))}
          </tbody>
        </table>
      </div>
      {siteEntries.length > 0 && <p className="muted small">{siteEntries.length} per-site ledger entries recorded as well.</p>}
    </>
  );
}
