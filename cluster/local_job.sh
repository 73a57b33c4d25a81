#!/usr/bin/env bash
# Start a one-machine Ray cluster bound to 127.0.0.1, submit a medsight_ray.tune job to it
# with `ray job submit --working-dir .`, follow its logs, and stop the cluster again.
#
#   cluster/local_job.sh                                  # the demo sweep, as a Ray job
#   cluster/local_job.sh --space tune_spaces/grading.yaml --data /abs/path/eyes --out /abs/path/sweep
#
# Run it from the project directory with the project's Python environment active (or
# PY=.venv/bin/python). Arguments go to `python -m medsight_ray.tune`; give --data and
# --out as absolute paths, because the job runs in Ray's copy of the working directory.
# Environment: RAY_PORT (GCS), DASHBOARD_PORT, AGENT_PORT (dashboard agent), CLIENT_PORT
# (Ray client): each a free port on 127.0.0.1 unless set, so that the script runs beside
# another local Ray; a port taken between the pick and Ray's bind makes the head exit,
# and the head is started again on fresh ports (3 tries). NUM_CPUS (default 4). Ray's
# logs stay in /tmp/medsight_ray_job.* when the job fails. The exit code is the job's: 0
# when it SUCCEEDED, else 1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-python}"
BIN="$(dirname "$("$PY" -c 'import sys; print(sys.executable)')")"
export PATH="$BIN:$PATH"
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
FIXED_RAY_PORT="${RAY_PORT:-}" FIXED_DASHBOARD_PORT="${DASHBOARD_PORT:-}"
FIXED_AGENT_PORT="${AGENT_PORT:-}" FIXED_CLIENT_PORT="${CLIENT_PORT:-}"
NUM_CPUS="${NUM_CPUS:-4}"
# Before Ray starts: every listener (GCS, raylet, dashboard, metrics) on 127.0.0.1.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_USAGE_STATS_ENABLED=0 RAY_DATA_DISABLE_PROGRESS_BARS=1
# Ray 2.60 turns token auth on; the job client must present the token too.
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
TEMP_DIR="$(mktemp -d /tmp/medsight_ray_job.XXXXXX)"

# `--block` keeps the head in the foreground of a child we own, so that stopping it stops
# only this cluster (`ray stop` would stop every Ray on the machine).
HEAD_PID=""
cleanup() {
    local code=$?
    if [ -n "$HEAD_PID" ]; then kill -TERM "$HEAD_PID" 2>/dev/null || true; wait "$HEAD_PID" 2>/dev/null || true; fi
    if [ "$code" = 0 ]; then rm -rf "$TEMP_DIR"; else echo "Ray logs: $TEMP_DIR/session_latest/logs" >&2; fi
}
trap cleanup EXIT

for try in 1 2 3; do
    RAY_PORT="${FIXED_RAY_PORT:-$(free_port)}" DASHBOARD_PORT="${FIXED_DASHBOARD_PORT:-$(free_port)}"
    AGENT_PORT="${FIXED_AGENT_PORT:-$(free_port)}" CLIENT_PORT="${FIXED_CLIENT_PORT:-$(free_port)}"
    ray start --head --block --port="$RAY_PORT" --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" \
        --dashboard-agent-listen-port="$AGENT_PORT" --ray-client-server-port="$CLIENT_PORT" \
        --num-cpus="$NUM_CPUS" --disable-usage-stats --temp-dir="$TEMP_DIR" >"$TEMP_DIR/head.log" 2>&1 &
    HEAD_PID=$!
    ADDRESS="http://127.0.0.1:$DASHBOARD_PORT"
    UP=""
    for _ in $(seq 1 60); do
        if ray job list --address "$ADDRESS" >/dev/null 2>&1; then UP=1; break; fi
        if ! kill -0 "$HEAD_PID" 2>/dev/null; then break; fi
        sleep 1
    done
    if [ -n "$UP" ]; then break; fi
    cat "$TEMP_DIR/head.log" >&2
    kill -TERM "$HEAD_PID" 2>/dev/null || true
    wait "$HEAD_PID" 2>/dev/null || true
    HEAD_PID=""
    if [ "$try" = 3 ]; then exit 1; fi
    echo "Ray head did not come up (try $try of 3); starting it again on fresh ports" >&2
done
echo "Ray head up; dashboard at $ADDRESS"
# The job inherits RAY_ADDRESS from the job supervisor, so the sweep joins this cluster.
# The dashboard answers before its job agent is ready; submission is retried until it is.
ID="medsight-$(date +%Y%m%d-%H%M%S)-$$"
for attempt in $(seq 1 20); do
    if ray job submit --address "$ADDRESS" --submission-id "$ID" --no-wait --working-dir . \
        -- python -m medsight_ray.tune "$@" >"$TEMP_DIR/submit.log" 2>&1; then break; fi
    if [ "$attempt" = 20 ]; then cat "$TEMP_DIR/submit.log" >&2; exit 1; fi
    sleep 2
done
ray job logs --address "$ADDRESS" --follow "$ID"
# `ray job status` prints "Job '<id>' succeeded" (or failed/stopped) once the job ended.
# Its whole output is read first: `ray ... | grep -q` under pipefail fails when grep
# exits at the first match and ray then writes into a closed pipe (SIGPIPE).
STATUS="$(ray job status --address "$ADDRESS" "$ID" 2>&1 || true)"
case "$STATUS" in
    *"Job '$ID' succeeded"*) exit 0 ;;
esac
echo "$STATUS" >&2
exit 1
