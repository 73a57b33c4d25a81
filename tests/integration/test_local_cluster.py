"""cluster/local_cluster.sh: a head and worker nodes on loopback, a command run against
them, and only its own processes stopped afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "cluster" / "local_cluster.sh"

#: Run inside the cluster: its nodes, and every address its processes listen on.
PROBE = """
import json, os, psutil, ray
ray.init()
port = os.environ["RAY_ADDRESS"].rsplit(":", 1)[1]
ours = [p for p in psutil.process_iter(["cmdline"]) if any(port in c for c in p.info["cmdline"] or [])]
listen = {c.laddr.ip for p in ours for c in p.net_connections("tcp") if c.status == "LISTEN"}
nodes = [n for n in ray.nodes() if n["Alive"]]
print("PROBE", json.dumps({"nodes": len(nodes), "cpus": sorted(n["Resources"].get("CPU", 0) for n in nodes),
                           "ips": sorted({n["NodeManagerAddress"] for n in nodes}), "listen": sorted(listen),
                           "processes": len(ours), "port": port}))
"""


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "PY": sys.executable})


@pytest.mark.usefixtures("ray_local")
def test_the_script_runs_a_command_on_loopback_nodes_and_stops_only_its_own() -> None:
    import psutil
    import ray

    done = _script("--nodes", "2", "--node-cpus", "1", "--head-cpus", "1", "--object-store-mb", "100",
                   "--", sys.executable, "-c", PROBE)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "cluster up: 3 nodes" in done.stdout
    probe = json.loads(done.stdout.split("PROBE ", 1)[1].splitlines()[0])
    assert probe["nodes"] == 3 and probe["cpus"] == [1, 1, 1] and probe["ips"] == ["127.0.0.1"]
    assert probe["processes"] >= 6 and probe["listen"]  # GCS, raylets, agents... were seen listening
    assert set(probe["listen"]) <= {"127.0.0.1", "::ffff:127.0.0.1"}, probe["listen"]
    # Gone: every process of that cluster. Still here: this session's own Ray.
    port = probe["port"]
    left = [p.pid for p in psutil.process_iter(["cmdline"])
            if any(f"127.0.0.1:{port}" in c for c in p.info["cmdline"] or [])]
    assert left == []
    assert ray.get(ray.put(41)) + 1 == 42


def test_bad_counts_are_refused_before_anything_starts() -> None:
    done = _script("--nodes", "-1")
    assert done.returncode == 2
    assert "--nodes" in done.stderr and "at least 0" in done.stderr and "got -1" in done.stderr
    assert "cluster up" not in done.stdout
