#!/usr/bin/env bash
# A multi-node Ray cluster on this machine: a head and worker nodes, each its own raylet
# on 127.0.0.1 with its own CPUs and a bounded object store, token auth on. It stops only
# the nodes it started (never `ray stop`, which stops every Ray on the machine), also
# when the command fails or is interrupted.
#
#   cluster/local_cluster.sh                          # head + 2 worker nodes; Ctrl-C stops them
#   cluster/local_cluster.sh --nodes 3 --node-cpus 4 -- \
#       python -m medsight_ray.tune --max-concurrent 2 --space tune_spaces/grading.yaml --data /abs/data
#   cluster/local_cluster.sh -- ray job submit --working-dir . -- python -m medsight_ray.tune
#
# The command after `--` runs with RAY_ADDRESS (the GCS, for drivers and --address) and
# RAY_API_SERVER_ADDRESS (the dashboard, for `ray job submit`) set to the cluster; the
# script exits with its code. Flags: --nodes N worker nodes (default 2), --node-cpus C (2),
# --head-cpus C (1), --object-store-mb MB per node (256). Run it from the project
# directory with the project's Python environment active, or PY=.venv/bin/python.
# Worker nodes are `python -m medsight_ray.localcluster node`, not `ray start`: see that
# module for why (`ray start --address` refuses to start with loopback-only binding).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-python}"
exec "$PY" -m medsight_ray.localcluster up "$@"
