// How the Federation page names a federation's configuration (from
// `/api/fl/privacy-metrics`' `federation`).
import type { FlFederationRow } from "../api/types";

/** Display names of the strategies the aggregator knows. */
const STRATEGY_NAMES: Record<string, string> = {
  fedavg: "FedAvg",
  fedprox: "FedProx",
  fedadam: "FedAdam",
  median: "Coordinate-wise median",
  "trimmed-mean": "Trimmed mean",
  krum: "Krum",
  "multi-krum": "Multi-Krum",
};

/** Names of the strategies' hyper-parameters. */
const PARAM_NAMES: Record<string, string> = {
  mu: "μ",
  beta: "trimmed fraction β",
  eta: "server learning rate η",
  beta1: "β₁",
  beta2: "β₂",
  tau: "τ",
  f: "Byzantine sites f",
  m: "averaged m",
};

/** The display name of a strategy (an unknown one as it was sent). */
export function strategyName(strategy: string): string {
  return STRATEGY_NAMES[strategy] ?? strategy;
}

/** The strategy with its hyper-parameters, e.g. `FedProx (μ = 0.01)`. */
export function strategyLabel(f: Pick<FlFederationRow, "strategy" | "strategy_params">): string {
  const params = Object.entries(f.strategy_params ?? {})
    .filter((e): e is [string, number] => typeof e[1] === "number")
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${PARAM_NAMES[k] ?? k} = ${v}`);
  const name = strategyName(f.strategy);
  return params.length > 0 ? `${name} (${params.join(", ")})` : name;
}
