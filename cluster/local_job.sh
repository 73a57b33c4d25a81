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
# Environment: RAY_PORT (GCS, default 6390), DASHBOARD_PORT (default 8275), AGENT_PORT
# (dashboard agent, default 52375), CLIENT_PORT (Ray client, default 24001), NUM_CPUS
# (default 4). The ports differ from Ray's defaults so that the script also runs beside
# another local Ray (whose agent holds 52365). Ray's logs stay in /tmp/medsight_ray_job.*
# when the job fails. The exit code is the job's: 0 when it SUCCEEDED, else 1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-python}"
BIN="$(dirname "$("$PY" -c 'import sys; print(sys.executable)')")"
export PATH="$BIN:$PATH"
RAY_PORT="${RAY_PORT:-6390}"
DASHBOARD_PORT="${DASHBOARD_PORT:-8275}"
AGENT_PORT="${AGENT_PORT:-52375}"
CLIENT_PORT="${CLIENT_PORT:-24001}"
NUM_CPUS="${NUM_CPUS:-4}"
# Before Ray starts: every listener (GCS, raylet, dashboard, metrics) on 127.0.0.1.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_USAGE_STATS_ENABLED=0 RAY_DATA_DISABLE_PROGRESS_BARS=1
# Ray 2.60 turns token auth on; the job client must present the token too.
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
TEMP_DIR="$(mktemp -d /tmp/medsight_ray_job.XXXXXX)"

# `--block` keeps the head in the foreground of a child we own, so that stopping it stops
# only this cluster (`ray stop` would stop every Ray on the machine).
ray start --head --block --port="$RAY_PORT" --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" \
    --dashboard-agent-listen-port="$AGENT_PORT" --ray-client-server-port="$CLIENT_PORT" \
    --num-cpus="$NUM_CPUS" --disable-usage-stats --temp-dir="$TEMP_DIR" >"$TEMP_DIR/head.log" 2>&1 &
HEAD_PID=$!
cleanup() {
    local code=$?
    kill -TERM "$HEAD_PID" 2>/dev/null || true
    wait "$HEAD_PID" 2>/dev/null || true
    if [ "$code" = 0 ]; then rm -rf "$TEMP_DIR"; else echo "Ray logs: $TEMP_DIR/session_latest/logs" >&2; fi
}
trap cleanup EXIT

ADDRESS="http://127.0.0.1:$DASHBOARD_PORT"
for _ in $(seq 1 60); do
    if ray job list --address "$ADDRESS" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$HEAD_PID" 2>/dev/null; then cat "$TEMP_DIR/head.log" >&2; exit 1; fi
    sleep 1
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
