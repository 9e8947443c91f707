#!/usr/bin/env bash
# scripts/demo-auth.sh AUTH_DIR [STORE_DIR] — the secured demo's keys and tokens (npm start, the e2e tests).
#   first run: `zonegate auth init` (operator, account and signing keys, nats-server.conf with JetStream in
#   STORE_DIR, default AUTH_DIR/../nats) and the table signing key (table-signing.nk, its public key in
#   table-signing.pub); every run: fresh tokens (720h) for the Procfile's processes and a viewer:
#   reconciler.creds, zone-a-egress.creds, zone-b-egress.creds, viewer.creds (all mode 0600).
# Needs dist/ (npm run build). Prints one line per file written; never prints a secret.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
auth="${1:?usage: demo-auth.sh AUTH_DIR [STORE_DIR]}"
store="${2:-$(dirname "$auth")/nats}"
zg() { node "$root/dist/cli/main.js" "$@"; }

umask 077
init=$(zg auth init --auth-dir "$auth" --store-dir "$store")
echo "${init%%$'\n'*}"
if [ ! -s "$auth/table-signing.nk" ]; then
  zg signing-key generate --out "$auth/table-signing.nk" >"$auth/table-signing.pub"
  echo "table signing key: $auth/table-signing.nk (public key in table-signing.pub)"
elif [ ! -s "$auth/table-signing.pub" ]; then
  zg signing-key public "$auth/table-signing.nk" >"$auth/table-signing.pub"
fi
chmod 644 "$auth/table-signing.pub"
zg token --auth-dir "$auth" --scope reconciler --valid-for 720h --out "$auth/reconciler.creds" --force
for zone in zone-a zone-b; do
  zg token --auth-dir "$auth" --scope egress --zone "$zone" --valid-for 720h --out "$auth/$zone-egress.creds" --force
done
zg token --auth-dir "$auth" --scope viewer --valid-for 720h --out "$auth/viewer.creds" --force
