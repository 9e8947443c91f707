#!/usr/bin/env bash
# Procfile `caller` (npm start): two stand-in Kuma sidecars of zone-a calling the external service `httpbin`
# through the zone-a egress with mesh mTLS, every CALL_EVERY seconds (default 15):
#   web     — allowed by gitops-example/traffic-permissions/httpbin.yaml: the egress relays, httpbin answers
#   billing — no MeshTrafficPermission lets it in: the egress closes the connection after the handshake
# Their workload certificates come from `zonegate cert issue` (the mesh's builtin CA, which the reconciler keeps
# in NATS KV), written to .data/callers/<service>/. Each call is one `zonegate probe` as a sidecar would make it
# (SNI httpbin{mesh=default}, ALPN kuma, client certificate, egress verified as spiffe://default/zone-egress).
# Usage: demo-caller.sh [--creds FILE] — FILE: a token allowed to read the CA bucket (npm start passes the
# reconciler's, as docs/security.md says for `zonegate cert issue`).
# Environment: EGRESS (default 127.0.0.1:15200, foreman's first zone-a egress), NATS_URL, CALL_EVERY.
set -uo pipefail
cd "$(dirname "$0")/.."
creds=()
if [ "${1:-}" = "--creds" ]; then creds=(--creds "${2:?--creds needs a file}"); fi
egress="${EGRESS:-127.0.0.1:15200}"
every="${CALL_EVERY:-15}"
zonegate() { node dist/cli/main.js "$@"; }

# the CA exists once the reconciler's first pass applied the mesh: retry until then
for svc in web billing; do
  tries=0
  until err=$(zonegate cert issue --mesh default --service "$svc" --out ".data/callers/$svc" "${creds[@]}" 2>&1 >/dev/null); do
    tries=$((tries + 1))
    [ $((tries % 15)) -eq 1 ] && echo "caller: waiting for the mesh CA (${err##*✗ })"
    sleep 2
  done
done
echo "caller: workload certificates spiffe://default/web and spiffe://default/billing in .data/callers/"

call() {
  local svc=$1 sni=$2 dir=".data/callers/$1" out headline answer
  out=$(zonegate probe --sni "$sni" --cert "$dir/cert.pem" --key "$dir/key.pem" --ca "$dir/ca.pem" --verify \
    --timeout 5s "$egress" 2>&1)
  headline=$(printf '%s\n' "$out" | head -n 1)
  answer=$(printf '%s\n' "$out" | sed -n 's/^ *answer *//p')
  case "$headline" in
    connected*) echo "caller: $svc → $sni via $egress: mTLS ok, answered by ${answer:-?}" ;;
    *)
      # `OUTCOME  HOST:PORT  sni S  (why)` → `why`, prefixed with the outcome unless it says it already
      local outcome="${headline%% *}" why
      why=$(printf '%s' "$headline" | sed 's/^[^(]*(//; s/)$//')
      case "$why" in "$outcome"*) ;; *) why="$outcome: $why" ;; esac
      echo "caller: $svc → $sni via $egress: REFUSED — $why" ;;
  esac
}

while true; do
  call web 'httpbin{mesh=default}'
  call billing 'httpbin{mesh=default}'
  sleep "$every"
done
