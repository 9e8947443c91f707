#!/usr/bin/env bash
# `npm start`: build, seed .data/gitops from gitops-example/ (first run only), NATS auth keys (first run) and fresh
# tokens (every run) in .data/auth (scripts/demo-auth.sh; docs/security.md), then run the Procfile with foreman:
# nats-server runs with auth on (.data/auth/nats-server.conf), every process connects with its own token.
#   npm start                      nats, reconciler, one egress per zone, demo upstreams
#   npm start -- -m egress=3       three zone-a egress replicas (the rest stay at 1: we prepend all=1)
# Other arguments go to `foreman start` unchanged (-t SECONDS, -p BASE, ...). Ports: see .foreman and
# docs/getting-started.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/usr/local/sbin"

for tool in foreman nats-server git node; do
  command -v "$tool" >/dev/null 2>&1 || { echo "start: $tool not found (run: npm run setup)" >&2; exit 1; }
done

echo "start: building (npm run build)"
npm run -s build

mkdir -p .data/nats .data/egress
echo "start: NATS auth in .data/auth (keys on first run, fresh tokens now)"
bash scripts/demo-auth.sh .data/auth .data/nats
if [ ! -d .data/gitops/.git ]; then
  echo "start: creating .data/gitops from gitops-example/"
  mkdir -p .data/gitops
  cp -R gitops-example/. .data/gitops/
  git -C .data/gitops init -q -b main
  git -C .data/gitops add -A
  # a fixed author when none is configured (fresh machines, CI)
  name=$(git -C .data/gitops config user.name || true)
  email=$(git -C .data/gitops config user.email || true)
  git -C .data/gitops -c user.name="${name:-zonegate demo}" -c user.email="${email:-demo@zonegate.invalid}" \
    commit -q -m "seed from gitops-example"
  echo "start: .data/gitops at $(git -C .data/gitops rev-parse --short HEAD)"
fi

# foreman's -m alone runs only the types it names (the default is all=0 then): prepend all=1 unless given.
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -m|--formation)
      f="${2:-}"; shift 2 || { echo "start: $1 needs a value" >&2; exit 2; }
      case ",$f" in *",all="*) ;; *) f="all=1,$f" ;; esac
      args+=(-m "$f") ;;
    -m=*|--formation=*)
      f="${1#*=}"; shift
      case ",$f" in *",all="*) ;; *) f="all=1,$f" ;; esac
      args+=(-m "$f") ;;
    *) args+=("$1"); shift ;;
  esac
done

# people read these logs: one pretty line per entry (LOG_FORMAT=json npm start for JSON lines)
export LOG_FORMAT="${LOG_FORMAT:-pretty}"

echo "start: zonegate commands need a token now, e.g. NATS_CREDS=.data/auth/viewer.creds zonegate status"
exec foreman start -f Procfile "${args[@]}"
