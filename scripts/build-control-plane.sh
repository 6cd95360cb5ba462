#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler and etcd from the Go module proxy
# into a versioned cache outside the repository, so tests and `kubemark start --provider local`
# run a real control plane without any download site.
#
# Why a generated module: k8s.io/kubernetes replaces its k8s.io/* staging modules with ./staging
# paths, which do not exist in the published module zip. A consumer must replace each staging
# module with its published v0.X.Y twin, so we derive those replaces from the pinned go.mod.
#
# Why etcd from go.etcd.io/etcd/server/v3: Debian's etcd-server is 3.4, older than the 3.5+ this
# Kubernetes version supports; the server module at the exact version k8s.io/kubernetes requires
# gives a matching etcd with the same Go toolchain.
#
# Usage: scripts/build-control-plane.sh [--with-peers] [--kubectl] [--metrics-server]
#   --with-peers   also builds the reference peers for side-by-side benchmarks: upstream's hollow node
#                  (cmd/kubemark, same module as the control plane) and KWOK (sigs.k8s.io/kwok at
#                  $KWOK_VERSION, its own module) with the stages its in-cluster manifest uses.
#   --kubectl      also builds kubectl (for machines without one).
#   --metrics-server  also builds metrics-server (sigs.k8s.io/metrics-server at
#                  $METRICS_SERVER_VERSION, its own module), which the tests run as a real peer.
# Env: KUBEMARK_K8S_VERSION (default below), KUBEMARK_CACHE_DIR (default ~/.cache/kubemark),
#      KUBEMARK_METRICS_SERVER_VERSION (default below).
# GOTOOLCHAIN=local: a module needing a newer Go fails here instead of downloading a toolchain.
set -euo pipefail

K8S_VERSION="${KUBEMARK_K8S_VERSION:-v1.36.3}"
KWOK_VERSION="${KUBEMARK_KWOK_VERSION:-v0.8.0}"
# Not v0.9.1: its go.mod requires go >= 1.26.10, newer than the Go of these machines (1.26.8).
METRICS_SERVER_VERSION="${KUBEMARK_METRICS_SERVER_VERSION:-v0.9.0}"
CACHE_DIR="${KUBEMARK_CACHE_DIR:-$HOME/.cache/kubemark}"
BIN_DIR="$CACHE_DIR/bin/$K8S_VERSION"
WORK_DIR="$CACHE_DIR/build/$K8S_VERSION"

components=(kube-apiserver kube-controller-manager kube-scheduler etcd)
for arg in "$@"; do
  case "$arg" in
    --with-peers) components+=(kubemark kwok) ;;
    --kubectl) components+=(kubectl) ;;
    --metrics-server) components+=(metrics-server) ;;
    *) echo "error: unknown argument $arg (use --with-peers, --kubectl or --metrics-server)" >&2; exit 2 ;;
  esac
done

missing=()
for c in "${components[@]}"; do
  [[ -x "$BIN_DIR/$c" ]] || missing+=("$c")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "control plane $K8S_VERSION already built in $BIN_DIR"
  exit 0
fi
command -v go >/dev/null || { echo "error: go is not installed; it is needed to build the control plane" >&2; exit 1; }
export GOTOOLCHAIN=local

mkdir -p "$WORK_DIR" "$BIN_DIR"
cd "$WORK_DIR"

minor="${K8S_VERSION#v1.}"
staging_version="v0.${minor}"

if [[ ! -f go.mod ]]; then
  upstream_mod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f "$upstream_mod" ]] || { echo "error: could not download k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
  go_line=$(grep -m1 '^go ' "$upstream_mod")
  {
    echo "module kubemark.local/controlplane"
    echo
    echo "$go_line"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging/' "$upstream_mod" \
      | awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > go.mod.tmp
  mv go.mod.tmp go.mod
  mkdir -p etcd
  cat > etcd/main.go <<'GO'
// Command etcd is etcd's own entry point, built at the version k8s.io/kubernetes requires.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "k8s.io/kubernetes/cmd/kubemark/app"
)
GO
  go mod tidy
fi

# The version the binaries report (and that hollow nodes copy into nodeInfo.kubeletVersion).
major=1
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
# Keep the minor without the patch for gitMinor.
ldflags="${ldflags//gitMinor=$minor/gitMinor=${minor%%.*}}"

export CGO_ENABLED=0
build_kwok() {
  # KWOK pins its own k8s.io/* versions: built as its own module with `go install`, never mixed
  # into the control plane's module.
  local start
  start=$(date +%s)
  echo "building kwok (sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION) ..."
  GOBIN="$BIN_DIR/.kwok-build" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  local stages
  stages="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
  {
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
             pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      echo "---"
      cat "$stages/$f"
    done
  } > "$BIN_DIR/kwok-stages.yaml.tmp"
  mv "$BIN_DIR/kwok-stages.yaml.tmp" "$BIN_DIR/kwok-stages.yaml"
  mv "$BIN_DIR/.kwok-build/kwok" "$BIN_DIR/kwok"
  rmdir "$BIN_DIR/.kwok-build"
  echo "built kwok in $(( $(date +%s) - start ))s"
}
build_metrics_server() {
  # Its own module too, for the same reason as KWOK. The -X is what its Makefile stamps, so that
  # `metrics-server --version` names the release.
  local start
  start=$(date +%s)
  echo "building metrics-server (sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION) ..."
  GOBIN="$BIN_DIR/.metrics-server-build" go install -trimpath \
    -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION" \
    "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
  mv "$BIN_DIR/.metrics-server-build/metrics-server" "$BIN_DIR/metrics-server"
  rmdir "$BIN_DIR/.metrics-server-build"
  echo "built metrics-server in $(( $(date +%s) - start ))s"
}
for c in "${missing[@]}"; do
  case "$c" in
    kwok) build_kwok; continue ;;
    metrics-server) build_metrics_server; continue ;;
  esac
  start=$(date +%s)
  case "$c" in
    etcd) pkg=./etcd ;;
    *) pkg="k8s.io/kubernetes/cmd/$c" ;;
  esac
  echo "building $c ($pkg) ..."
  go build -mod=mod -trimpath -ldflags "$ldflags" -o "$BIN_DIR/$c.tmp" "$pkg"
  mv "$BIN_DIR/$c.tmp" "$BIN_DIR/$c"
  echo "built $c in $(( $(date +%s) - start ))s"
done
echo "control plane $K8S_VERSION ready in $BIN_DIR"
