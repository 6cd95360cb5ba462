#!/usr/bin/env bash
# Installs the programs the tests run as real peers, only those missing, one line per install:
#   Debian: chromium (renders the HTML report), openssh-server and openssh-client (SSH bootstrap
#           tests), docker-registry (image tests), iproute2 (`ip`: tests create network namespaces);
#   PyPI:   moto[server], the EC2 emulator of the aws provider's tests;
#   kubectl, built from the module cache when the machine has none.
# The tests start sshd, the registry and moto themselves on loopback ports, never as services.
# scripts/test.sh sources this file so that the PATH entries it adds (pip's user bin, the built
# kubectl) reach `cargo test`; run on its own, it prints them.
set -euo pipefail

install_test_deps() {
  local here sudo="" moto_version="5.2.1" k8s_version bin_dir p
  local missing=() added=()
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  [[ "$(id -u)" == 0 ]] || sudo="sudo"

  command -v chromium >/dev/null || missing+=(chromium)
  [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
  command -v ssh >/dev/null || missing+=(openssh-client)
  [[ -x /usr/bin/docker-registry ]] || missing+=(docker-registry)
  # /usr/sbin may not be on a non-root PATH.
  command -v ip >/dev/null || [[ -x /usr/sbin/ip || -x /sbin/ip ]] || missing+=(iproute2)
  if (( ${#missing[@]} )); then
    for p in "${missing[@]}"; do echo "installing $p (apt)"; done
    # `env` because sudo drops the caller's environment.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi

  # pip --user puts moto_server in ~/.local/bin, which PATH often lacks.
  if ! command -v moto_server >/dev/null && [[ ":$PATH:" != *":$HOME/.local/bin:"* ]]; then
    export PATH="$HOME/.local/bin:$PATH"
    added+=("$HOME/.local/bin")
  fi
  if ! command -v moto_server >/dev/null; then
    echo "installing moto[server]==$moto_version (pip)"
    python3 -m pip install --quiet --user "moto[server]==$moto_version" \
      || python3 -m pip install --quiet "moto[server]==$moto_version"
    command -v moto_server >/dev/null || { echo "error: pip installed moto but moto_server is not on PATH" >&2; return 1; }
  fi

  if ! command -v kubectl >/dev/null; then
    k8s_version="${KUBEMARK_K8S_VERSION:-$(sed -n 's/^K8S_VERSION="${KUBEMARK_K8S_VERSION:-\(.*\)}"$/\1/p' "$here/build-control-plane.sh")}"
    bin_dir="${KUBEMARK_CACHE_DIR:-$HOME/.cache/kubemark}/bin/$k8s_version"
    if [[ ! -x "$bin_dir/kubectl" ]]; then
      echo "installing kubectl $k8s_version (built into $bin_dir)"
      "$here/build-control-plane.sh" --kubectl
    fi
    export PATH="$bin_dir:$PATH"
    added+=("$bin_dir")
  fi

  if (( ${#added[@]} )) && [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    echo "the tests need these on PATH: ${added[*]}"
  fi
}

install_test_deps
unset -f install_test_deps
