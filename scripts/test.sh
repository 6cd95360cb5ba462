#!/usr/bin/env bash
# The test command: installs the programs the tests run as real peers and builds the control plane
# and metrics-server into the cache, each only when missing (a no-op when there), then runs every
# test of the workspace against them.
set -euo pipefail
cd "$(dirname "$0")/.."
# Sourced, not run: the PATH entries it adds (pip's user bin, a built kubectl) must reach cargo.
source scripts/install-test-deps.sh
scripts/build-control-plane.sh --metrics-server
# Always --workspace: building a subset unifies features differently and rebuilds dependencies.
exec cargo test --workspace "$@"
