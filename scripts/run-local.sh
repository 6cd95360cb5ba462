#!/usr/bin/env bash
# The main job on this machine, no cloud: builds what is missing, starts a local kubemark cluster
# (real control plane + NODES hollow nodes) and runs the density test against it.
# The cluster keeps running afterwards; `target/release/kubemark stop` removes it.
# Usage: scripts/run-local.sh [NODES] [PODS_PER_NODE]
set -euo pipefail
cd "$(dirname "$0")/.."
nodes="${1:-${NUM_NODES:-100}}"
pods_per_node="${2:-30}"
scripts/build-control-plane.sh
cargo build --release --workspace --bins
kubemark=target/release/kubemark
if $kubemark status >/dev/null 2>&1; then
  echo "a kubemark cluster is already running; stopping it first"
  $kubemark stop
fi
$kubemark start --provider local --nodes "$nodes"
$kubemark test density --pods-per-node "$pods_per_node" --report "kubemark-density-${nodes}nodes.json"
echo "the cluster is still running: kubectl --kubeconfig kubeconfig.kubemark get nodes; stop it with: $kubemark stop"
