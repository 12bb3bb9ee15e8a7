#!/usr/bin/env bash
# Bring the portal up on embedded defaults: SQLite, the filesystem Celery broker, a worker with
# beat, and the development server on http://127.0.0.1:8000. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
HOST="${HUB_HOST:-127.0.0.1}"
PORT="${HUB_PORT:-8000}"
mkdir -p var

"$PY" manage.py migrate --noinput -v 0
"$PY" manage.py seed_demo

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "Stopping the web server and the worker..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

# The demo's connections keep producing simulated traffic, so the charts and the detection move.
FABRIC_TELEMETRY_SIMULATE="${FABRIC_TELEMETRY_SIMULATE:-1}" "$VENV/bin/celery" -A hub worker -B -s var/celerybeat-schedule -Q default,workflows,telemetry,webhooks \
  --concurrency 2 -l warning &
pids+=($!)
"$PY" manage.py runserver "$HOST:$PORT" --noreload &
pids+=($!)

sleep 2
cat <<TXT

  Interconnect Hub is running at http://$HOST:$PORT/
  Log in as owner@acme.example (or any user listed above) with the password interconnect-demo.
  API docs: http://$HOST:$PORT/api/docs/    Operator admin: http://$HOST:$PORT/admin/ (ops@hub.example)
  Press Ctrl-C to stop the server and the worker.

TXT
wait -n "${pids[@]}"
