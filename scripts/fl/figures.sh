#!/usr/bin/env bash
# The federation's reference figures on NSL-KDD, in one run: federated vs central MLP and
# the time against Flower's reference, FedAvg vs FedProx on non-IID partitions, robust
# strategies against one ×100 Byzantine site of five, and the DP accountant against
# `fedics dp epsilon`. Prints one JSON object per experiment (JSON Lines) on stdout, a
# readable summary on stderr. Needs jq.
#
#   cargo build --release -p fedics
#   scripts/fl/figures.sh > fl-figures.jsonl
#
# BIN: the fedics binary (default target/release/fedics); DATA: the NSL-KDD folder
# (default ../shared/data/nsl-kdd beside the checkout); SEEDS: seeds to repeat each
# experiment with (default "7").
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/release/fedics}
DATA=${DATA:-../shared/data/nsl-kdd}
SEEDS=${SEEDS:-7}
[ -x "$BIN" ] || { echo "error: $BIN is missing (cargo build --release -p fedics)" >&2; exit 1; }
command -v jq >/dev/null || { echo "error: jq is missing (apt-get install jq)" >&2; exit 1; }
TRAIN=$DATA/KDDTrain+.txt.gz
TEST=$DATA/KDDTest+.txt.gz

# run NAME ARGS…: one fl simulate, its output tagged with NAME (also kept in $LAST);
# prints a summary line.
LAST=$(mktemp)
trap 'rm -f "$LAST"' EXIT
run() {
  local name=$1; shift
  for seed in $SEEDS; do
    local out
    out=$(RUST_LOG=${RUST_LOG:-warn} "$BIN" fl simulate --dataset nsl-kdd --train "$TRAIN" --test "$TEST" --seed "$seed" --json "$@")
    jq -c --arg name "$name" --arg args "$*" '{experiment: $name, args: $args} + .' <<<"$out" | tee -a "$LAST"
    jq -r --arg name "$name" --argjson seed "$seed" '
      [$name, "seed \($seed)",
       "binary_accuracy \(.final.binary_accuracy // .final.accuracy // "-")",
       (if .central then "central \(.central.test.binary_accuracy // .central.test.accuracy)" else empty end),
       "total_s \(.total_seconds)",
       (if .rounds[-1].epsilon then "epsilon \(.rounds[-1].epsilon)" else empty end),
       (if ([.rounds[].refused] | any) then "refused: \([.rounds[].refused | select(.)][0])" else empty end)
      ] | join("  ")' <<<"$out" >&2
  done
}

run mlp-iid --sites 3 --rounds 5 --model mlp --compare-central
run mlp-noniid-fedavg --sites 3 --rounds 5 --model mlp --partition by-attack-category --strategy fedavg
run mlp-noniid-fedprox --sites 3 --rounds 5 --model mlp --partition by-attack-category --strategy fedprox:mu=0.01
run clean-fedavg --sites 5 --rounds 5 --model mlp
for s in fedavg median trimmed-mean:beta=0.2 krum:f=1 multi-krum:f=1,m=3; do
  run "byzantine-$s" --sites 5 --rounds 5 --model mlp --byzantine 1 --byzantine-scale 100 --strategy "$s"
done
run dp --sites 3 --rounds 5 --model mlp --dp-noise 1.0 --dp-clip 0.05 --max-epsilon 10
# The accountant's ε after the rounds the budget allowed, from the command (every site
# takes part in every round: sampling rate 1), beside the ledger's.
dp_rounds=$(tail -n 1 "$LAST" | jq '[.rounds[] | select(.epsilon != null and .refused == null)] | length')
ledger=$(tail -n 1 "$LAST" | jq '[.rounds[] | select(.refused == null) | .epsilon] | last')
"$BIN" dp epsilon --sampling-rate 1 --noise-multiplier 1.0 --steps "$dp_rounds" --delta 1e-5 --json \
  | jq -c --argjson steps "$dp_rounds" --argjson ledger "$ledger" \
      '{experiment: "dp-epsilon-command", steps: $steps, ledger_epsilon: $ledger} + .'
