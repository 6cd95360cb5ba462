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
cargo test --workspace "$@"

# The example third-party provider (its own workspace, examples/provider-example): in the same target
# dir, and its Cargo.lock must pin the workspace's versions, so that it reuses what was just built.
example=examples/provider-example
drift=$(awk '/^name = /{n=$3} /^version = /{print n, $3}' "$example/Cargo.lock" \
  | grep -v '^"kubemark-provider-example" ' | sort -u | comm -23 - <(awk '/^name = /{n=$3} /^version = /{print n, $3}' Cargo.lock | sort -u))
if [[ -n "$drift" ]]; then
  echo "$example/Cargo.lock pins versions the workspace's Cargo.lock does not (copy it over and rebuild):" >&2
  echo "$drift" >&2
  exit 1
fi
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" cargo test --locked --manifest-path "$example/Cargo.toml"
