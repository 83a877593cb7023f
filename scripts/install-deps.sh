#!/usr/bin/env bash
# Installs what building and testing vdx needs on a fresh Debian machine: OpenSSL headers and CLI,
# pkg-config, GNU time for the benchmarks, NNCP (the delivery benchmark runs the same work through it
# side by side), tmux (tests/tests/tui.rs runs `vdx tui` in it), and systemd-analyze to check the
# service unit. Safe to run again; does nothing when all is present.
set -euo pipefail

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v pkg-config >/dev/null || need+=(pkg-config)
[[ -f /usr/include/openssl/ssl.h ]] || need+=(libssl-dev)
[[ -x /usr/bin/time ]] || need+=(time)
command -v nncp-file >/dev/null || need+=(nncp) # scripts/bench-delivery.sh's NNCP side
command -v systemd-analyze >/dev/null || need+=(systemd) # checks ops/systemd/vdxd@.service
command -v tmux >/dev/null || need+=(tmux) # tests/tests/tui.rs drives `vdx tui` in a real terminal

if ((${#need[@]})); then
  echo "install-deps: installing ${need[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}"
fi
