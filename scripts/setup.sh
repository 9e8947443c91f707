#!/usr/bin/env bash
# Installs the system packages zonegate needs, then the npm dependencies, then builds.
#   npm run setup              nats-server (2.9+), foreman (Procfile runner), git, openssl; on Debian/Ubuntu also
#                              chromium + fonts (the status page's end-to-end test drives a headless Chromium)
#   npm run setup -- --bench   also haproxy, nginx (stream + ssl_preread), wrk, gcc + libssl-dev (the C load client), for benchmarks/
# Debian/Ubuntu: apt-get (as root, or through sudo). macOS: brew. Elsewhere: says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

bench=no
for a in "$@"; do
  case "$a" in
    --bench) bench=yes ;;
    --no-npm) no_npm=yes ;;
    *) echo "setup: unknown option $a" >&2; exit 2 ;;
  esac
done

pkgs_apt=(nats-server ruby-foreman git openssl ca-certificates chromium fonts-liberation python3)
pkgs_brew=(nats-server foreman git openssl python3)
if [ "$bench" = yes ]; then
  pkgs_apt+=(haproxy nginx libnginx-mod-stream wrk gcc libc6-dev libssl-dev)
  pkgs_brew+=(haproxy nginx wrk)
fi

have_all() {
  command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || return 1
  command -v foreman >/dev/null 2>&1 || return 1
  command -v python3 >/dev/null 2>&1 || return 1 # test/faults: a listener that never accepts
  if command -v apt-get >/dev/null 2>&1; then [ -x /usr/bin/chromium ] || return 1; fi
  if [ "$bench" = yes ]; then
    command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || return 1
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || return 1
    command -v wrk >/dev/null 2>&1 || return 1
    command -v gcc >/dev/null 2>&1 || return 1
    [ -f /usr/include/openssl/ssl.h ] || return 1
  fi
  return 0
}

if have_all; then
  echo "setup: system packages already present"
elif command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  echo "setup: installing with apt-get: ${pkgs_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${pkgs_apt[@]}" >/dev/null
elif command -v brew >/dev/null 2>&1; then
  echo "setup: installing with brew: ${pkgs_brew[*]}"
  brew install "${pkgs_brew[@]}"
else
  echo "setup: no apt-get or brew here. Install these yourself, then run 'npm ci && npm run build':" >&2
  echo "  nats-server 2.9 or newer (https://github.com/nats-io/nats-server/releases), foreman (ruby gem), git, openssl" >&2
  exit 1
fi

ver=$( (nats-server --version 2>/dev/null || /usr/sbin/nats-server --version) | sed -n 's/.*v\([0-9.]*\).*/\1/p')
echo "setup: nats-server ${ver:-?}"

if [ "${no_npm:-no}" != yes ]; then
  # never --omit=optional: TypeScript 7 ships its compiler as an optional native package
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
  npm run build
fi
echo "setup: done"
