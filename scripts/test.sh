#!/usr/bin/env bash
# The test command: builds the control plane into the cache if it is not there yet (a no-op when
# cached), then runs every test of the workspace against it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-control-plane.sh
# Always --workspace: building a subset unifies features differently and rebuilds dependencies.
exec cargo test --workspace "$@"
