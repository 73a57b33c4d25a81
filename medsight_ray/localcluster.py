"""A multi-node Ray cluster on one machine: a head and worker nodes, each its own raylet
with its own resources and object store, every listener on 127.0.0.1.

    python -m medsight_ray.localcluster up [--nodes 2] [--node-cpus 2] [--head-cpus 1]
        [--object-store-mb 256] [-- COMMAND ...]

``up`` starts the cluster, prints its address and each node, then runs ``COMMAND`` with
``RAY_ADDRESS`` set to the cluster (and stops the cluster when it ends, with its exit
code), or without a command waits until interrupted. ``cluster/local_cluster.sh`` wraps
it. Only the processes this cluster started are ever stopped: every one of them runs
under the cluster's own temporary directory, never Ray's shared ``/tmp/ray``, and
``ray stop`` (which stops every Ray on the machine) is never called.

Why worker nodes are not started with ``ray start``: Ray binds its listeners to
127.0.0.1 only while ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, and with that setting
``ray start --address`` refuses to start ("Multi-node Ray clusters are not supported on
Windows and OSX"). With it unset, ``--node-ip-address=127.0.0.1`` is overridden by the
machine's address and the GCS, raylets and agents listen on every interface. So the
head is ``ray start --head --block``, and each worker node is ``python -m
medsight_ray.localcluster node``: Ray's own ``Node`` (what ``ray start --block`` runs
after its checks) with the loopback settings, blocking and watching its processes the
same way. This is also how Ray's test clusters (``ray.cluster_utils``) start nodes.

Each node has its own Ray directory under the cluster's, as it would on its own machine.
Losing a node the way a spot instance disappears is :meth:`LocalCluster.kill_node`:
SIGKILL to that node's raylet, after which its watcher kills the rest of the node.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsight_ray.errors import ConfigError, exit_on_error
from medsight_ray.raylocal import LOOPBACK_ENV

LOOPBACK = "127.0.0.1"
MIB = 2**20


@dataclass(frozen=True)
class NodeSpec:
    """One worker node.

    Attributes:
        name: how the cluster names the node (``worker-1`` ...); unique.
        cpus: logical CPUs the node advertises (more than the cores is fine: they are
            scheduling slots, and Ray Data needs slots beside the train workers).
        object_store_mb: the node's object store (shared memory). Bounded, because one
            Ray instance here has reached 8-13 GB RSS; Ray's minimum is 75 MiB.
        resources: custom resources the node advertises (e.g. ``{"gpu_standin": 1}``).
    """

    name: str
    cpus: int = 2
    object_store_mb: int = 256
    resources: Mapping[str, float] = field(default_factory=dict)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (Ray's fixed defaults would collide with another
    local Ray, e.g. a test session's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def node_env(python: str = sys.executable) -> dict[str, str]:
    """The environment of every node process: loopback-only listeners, token auth on, and
    ``python``'s bin directory first on ``PATH``, so that a job's ``python -m ...`` runs in
    the environment the cluster was started from."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(python).parent}{os.pathsep}{env.get('PATH', '')}"
    # Forced, not defaulted as for a driver: loopback-only is what this cluster is.
    env.update(LOOPBACK_ENV)
    env.setdefault("RAY_AUTH_MODE", "token")
    # A driver's RAY_ADDRESS must not make a node join another cluster.
    env.pop("RAY_ADDRESS", None)
    return env


def client_auth() -> None:
    """Token auth for this process as for the nodes (unless ``RAY_AUTH_MODE`` chose
    otherwise), so that its state API calls present the token; and a token to present:
    like a local ``ray.init``, create ``~/.ray/auth_token`` on a machine without one."""
    from ray._private.authentication import authentication_token_setup as auth

    if os.environ.get("RAY_AUTH_MODE") is None:
        auth._enable_token_auth()
    auth.ensure_token_if_auth_enabled(None, create_token_if_missing=True)


class LocalCluster:
    """Start, grow, break and stop a multi-node cluster on this machine.

    Use it as a context manager, so that its nodes stop when the block ends, also on an
    error::

        with LocalCluster(head_cpus=1) as cluster:
            cluster.add_node(NodeSpec("worker-1"))
            subprocess.run([..., "--address", cluster.address])

    Args:
        head_cpus: logical CPUs of the head (it runs trial drivers and Ray Data tasks).
        object_store_mb: the head's object store.
        root: directory for the cluster's Ray sessions, logs and node records (default:
            a new temporary directory, removed by :meth:`stop` unless ``keep_logs``).
        python: the interpreter that runs worker nodes (default: this one).
        autoscaling_config: a cluster YAML of the ``fake_multinode`` provider for the head's
            autoscaler (``cluster/fake_multinode.yaml``), which then adds and removes worker
            nodes itself; the cluster writes a copy whose ``provider.gcs_address`` is
            :attr:`address`.
        port: the GCS port (default: a free one). Ports picked here are picked again when
            the head fails to start, so a port another process took between the pick and
            Ray's bind costs a retry, not the run.
    """

    def __init__(self, head_cpus: int = 1, object_store_mb: int = 256, root: str | Path | None = None,
                 python: str = sys.executable, autoscaling_config: str | Path | None = None,
                 port: int | None = None) -> None:
        self.head_cpus = head_cpus
        self.autoscaling_config = autoscaling_config
        self.object_store_mb = object_store_mb
        # Short: Ray's socket paths live under it and must stay below 108 bytes.
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="msr_", dir="/tmp"))
        self.python = python
        self.fixed_port = port
        self.port = port or free_port()
        self.dashboard_port = free_port()
        self.processes: dict[str, subprocess.Popen] = {}
        #: Nodes lost on purpose (:meth:`kill_node`): their exit is not an error.
        self.killed: set[str] = set()
        self.keep_logs = False

    @property
    def address(self) -> str:
        """The GCS address drivers and nodes join (``--address``, ``RAY_ADDRESS``)."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def dashboard_url(self) -> str:
        """The dashboard, also the address of ``ray job submit``."""
        return f"http://{LOOPBACK}:{self.dashboard_port}"

    def _bin(self, name: str) -> str:
        return str(Path(self.python).parent / name)

    def _spawn(self, name: str, args: list[str], env: Mapping[str, str] | None = None) -> subprocess.Popen:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        with open(self.root / "logs" / f"{name}.out", "ab") as log:
            # Its own process group: a Ctrl-C at the terminal reaches this process, which
            # stops the nodes in order, not every node at once.
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**node_env(self.python), **(env or {})})
        self.processes[name] = proc
        return proc

    def start(self, timeout: float = 90.0) -> LocalCluster:
        """Start the head and wait until it answers."""
        self.root.mkdir(parents=True, exist_ok=True)
        client_auth()
        autoscaler: list[str] = []
        env = {}
        if self.autoscaling_config is not None:
            # The fake provider refuses to start without RAY_FAKE_CLUSTER; a 1 s update
            # interval (default 5 s) makes nodes come and go promptly.
            env = {"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
        for attempt in (1, 2, 3):
            if attempt > 1 and self.fixed_port is None:
                self.port, self.dashboard_port = free_port(), free_port()
            if self.autoscaling_config is not None:
                autoscaler = [f"--autoscaling-config={self._autoscaling_copy()}"]
            self._spawn("head", [
                self._bin("ray"), "start", "--head", "--block", f"--port={self.port}",
                f"--num-cpus={self.head_cpus}", f"--object-store-memory={self.object_store_mb * MIB}",
                f"--dashboard-host={LOOPBACK}", f"--dashboard-port={self.dashboard_port}",
                f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}",
                "--min-worker-port=0", "--max-worker-port=0", "--disable-usage-stats",
                f"--temp-dir={self.root / 'ray'}", *autoscaler,
            ], env)
            try:
                self.wait_for_nodes(1, timeout)
                return self
            except RuntimeError:
                head = self.processes.pop("head")
                if attempt == 3 or head.poll() is None:
                    raise
                # The head exits when a port it was given was taken after free_port()
                # picked it, or, on a loaded machine, when its Ray Client server times out
                # waiting for its own node's record (measured while two other Ray
                # instances trained). Start it again, on fresh ports.
                self._kill_leftovers()
        return self

    def _autoscaling_copy(self) -> Path:
        """The autoscaling config with ``provider.gcs_address`` set to this head's address."""
        import yaml

        config = yaml.safe_load(Path(self.autoscaling_config).read_text())  # type: ignore[arg-type]
        config["provider"]["gcs_address"] = self.address
        copy = self.root / "autoscaling.yaml"
        copy.write_text(yaml.safe_dump(config))
        return copy

    def add_node(self, spec: NodeSpec, wait: bool = True, timeout: float = 90.0) -> None:
        """Start a worker node; with ``wait``, return once the cluster counts it alive."""
        if spec.name in self.processes or spec.name == "head":
            raise ConfigError("node names must be unique", where="NodeSpec.name", expected="a new name",
                              got=repr(spec.name))
        alive = len(self.alive_nodes())
        self._spawn(spec.name, [
            self.python, "-m", "medsight_ray.localcluster", "node", "--address", self.address,
            "--name", spec.name, "--cpus", str(spec.cpus), "--object-store-mb", str(spec.object_store_mb),
            "--resources", json.dumps(dict(spec.resources)), "--root", str(self.root),
        ])
        if wait:
            self.wait_for_nodes(alive + 1, timeout)
            # The GCS may count the node before its process has written its record.
            record = self.root / "nodes" / f"{spec.name}.json"
            deadline = time.monotonic() + timeout
            while not record.is_file() and time.monotonic() < deadline:
                time.sleep(0.1)

    def alive_nodes(self) -> list[dict[str, Any]]:
        """The cluster's alive nodes as the GCS lists them (``node_id``, ``resources_total``,
        ``is_head_node``...); empty while the head is not up."""
        from ray.util.state import list_nodes

        try:
            nodes = list_nodes(address=self.dashboard_url, filters=[("state", "=", "ALIVE")], timeout=10,
                               raise_on_missing_output=False)
        except Exception:  # the dashboard is not up yet, or just went away
            return []
        return [n if isinstance(n, dict) else vars(n) for n in nodes]

    def wait_for_nodes(self, count: int, timeout: float = 90.0) -> None:
        """Wait until ``count`` nodes are alive.

        Raises:
            RuntimeError: a node process exited, or the time ran out (with the node's log).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.alive_nodes()) >= count:
                return
            for name, proc in self.processes.items():
                if proc.poll() is not None and name not in self.killed:
                    raise RuntimeError(f"node {name} exited with {proc.returncode}: {self.log_tail(name)}")
            time.sleep(0.5)
        raise RuntimeError(f"{count} nodes not alive after {timeout:.0f} s; head: {self.log_tail('head')}")

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The end of a node process's output (for errors)."""
        path = self.root / "logs" / f"{name}.out"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else ""

    def node_record(self, name: str) -> dict[str, Any]:
        """What a worker node wrote when it came up: ``node_id`` and ``raylet_pid``."""
        return json.loads((self.root / "nodes" / f"{name}.json").read_text())

    def node_names(self) -> dict[str, str]:
        """Ray node id -> name of every worker node this cluster started."""
        return {self.node_record(name)["node_id"]: name for name in self.processes if name != "head"}

    def kill_node(self, name: str) -> str:
        """Lose worker node ``name`` as a spot instance is lost: SIGKILL its raylet (its
        watcher then kills the rest of the node). Returns the Ray node id it had."""
        record = self.node_record(name)
        self.killed.add(name)
        with contextlib.suppress(ProcessLookupError):
            os.kill(record["raylet_pid"], signal.SIGKILL)
        return str(record["node_id"])

    def stop(self, grace: float = 20.0) -> None:
        """Stop every node this cluster started (workers first, then the head) and anything
        still running under its directory; remove the directory unless ``keep_logs``."""
        for name in [n for n in self.processes if n != "head"] + ["head"]:
            proc = self.processes.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self._kill_leftovers()
        if not self.keep_logs:
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        """Kill whatever survived its node (a worker whose raylet was SIGKILLed, a
        straggling agent, a node the autoscaler started): every process of this cluster
        names its directory or its GCS address on its command line."""
        import psutil

        ours = re.compile(rf"{re.escape(str(self.root))}|{re.escape(LOOPBACK)}:{self.port}(?!\d)")
        for proc in psutil.process_iter(["pid", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                if proc.pid != os.getpid() and ours.search(" ".join(proc.info["cmdline"] or [])):
                    proc.kill()

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.keep_logs = True
            self.stop()
            raise

    def __exit__(self, kind: Any, err: Any, tb: Any) -> None:
        # A failure keeps the logs for whoever has to read them.
        self.keep_logs = self.keep_logs or kind is not None
        self.stop()


def run_node(address: str, name: str, cpus: int, object_store_mb: int, resources: dict[str, float],
             root: Path) -> int:
    """One worker node in the foreground: start it, record its node id and raylet pid,
    then watch its processes like ``ray start --block``: on SIGTERM stop them gracefully
    (exit 0); if one dies (a killed raylet) kill the rest (exit 1)."""
    import ray._private.parameter as parameter
    from ray._private import ray_constants
    from ray._private.authentication.authentication_token_setup import ensure_token_if_auth_enabled
    from ray._private.node import Node

    ensure_token_if_auth_enabled(None, create_token_if_missing=False)
    params = parameter.RayParams(
        node_ip_address=LOOPBACK, gcs_address=address, redis_address=address, num_cpus=cpus, num_gpus=0,
        object_store_memory=object_store_mb * MIB, resources=resources, min_worker_port=0, max_worker_port=0,
        node_manager_port=0, dashboard_agent_listen_port=None,
        # A directory of its own, as on a machine of its own: nodes that shared one would
        # share runtime environments, and a lost node's agent would delete a job's working
        # directory from under the job. Its own log monitor streams its workers' output.
        include_log_monitor=True, temp_dir=str(root / f"ray-{name}"))
    node = Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
    raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process
    (root / "nodes").mkdir(parents=True, exist_ok=True)
    record = {"name": name, "node_id": node.node_id, "raylet_pid": raylet.pid, "pid": os.getpid()}
    # Written whole, then renamed: a reader never sees half a record.
    partial = root / "nodes" / f".{name}.json"
    partial.write_text(json.dumps(record))
    partial.rename(root / "nodes" / f"{name}.json")
    print(f"node {name} up: {record}", flush=True)

    def graceful(signum: int, frame: Any) -> None:
        node.kill_all_processes(check_alive=False, allow_graceful=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, graceful)
    signal.signal(signal.SIGINT, graceful)
    while True:
        time.sleep(0.5)
        dead = node.dead_processes()
        if dead:
            print(f"node {name}: {[kind for kind, _ in dead]} exited; stopping the node", flush=True)
            node.kill_all_processes(check_alive=False, allow_graceful=False)
            os._exit(1)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests and docs (``up``'s command, after ``--``,
    is split off before parsing: see :func:`main`)."""
    p = argparse.ArgumentParser(prog="python -m medsight_ray.localcluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a head and worker nodes; run the command after -- against them, or wait")
    up.add_argument("--nodes", type=int, default=2, metavar="N", help="worker nodes besides the head (default 2)")
    up.add_argument("--node-cpus", type=int, default=2, metavar="C", help="logical CPUs of each worker node")
    up.add_argument("--head-cpus", type=int, default=1, metavar="C", help="logical CPUs of the head")
    up.add_argument("--object-store-mb", type=int, default=256, metavar="MB", help="object store of each node")
    node = sub.add_parser("node", help="one worker node in the foreground (what `up` starts)")
    node.add_argument("--address", required=True, metavar="ADDR", help="the head's GCS address")
    node.add_argument("--name", required=True)
    node.add_argument("--cpus", type=int, default=2)
    node.add_argument("--object-store-mb", type=int, default=256)
    node.add_argument("--resources", default="{}", metavar="JSON")
    node.add_argument("--root", required=True, type=Path)
    return p


def check_up_args(args: argparse.Namespace) -> None:
    """Validate ``up``'s numbers before anything starts.

    Raises:
        ConfigError: a count below its minimum.
    """
    for flag, value, least in (("--nodes", args.nodes, 0), ("--node-cpus", args.node_cpus, 1),
                               ("--head-cpus", args.head_cpus, 0), ("--object-store-mb", args.object_store_mb, 75)):
        if value < least:
            raise ConfigError("value too small", where=flag, expected=f"at least {least}", got=str(value))


def up(args: argparse.Namespace, command: Sequence[str]) -> int:
    """``up``: start the cluster, say where it is, run ``command`` or wait; stop it."""
    with LocalCluster(args.head_cpus, args.object_store_mb) as cluster:
        for index in range(1, args.nodes + 1):
            cluster.add_node(NodeSpec(f"worker-{index}", args.node_cpus, args.object_store_mb))
        print(f"cluster up: {1 + args.nodes} nodes at {cluster.address}, dashboard {cluster.dashboard_url}",
              flush=True)
        for node_id, name in cluster.node_names().items():
            print(f"  {name}: node {node_id[:12]}", flush=True)
        if not command:
            print("Ctrl-C stops it.", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.sigwait({signal.SIGINT, signal.SIGTERM})
            return 0
        # The interpreter's bin first, so that the command finds this environment's `ray`.
        env = {**node_env(cluster.python), "RAY_ADDRESS": cluster.address,
               "RAY_API_SERVER_ADDRESS": cluster.dashboard_url}
        return subprocess.run(list(command), env=env).returncode


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` is the command to run, never a flag of ours.
    split = argv.index("--") if "--" in argv else len(argv)
    args, command = build_parser().parse_args(argv[:split]), argv[split + 1:]
    if args.command == "node":
        return run_node(args.address, args.name, args.cpus, args.object_store_mb, json.loads(args.resources),
                        args.root)
    check_up_args(args)
    # SIGINT/SIGTERM are waited for (sigwait) rather than handled, so block them first.
    if not command:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    return up(args, command)


cli = exit_on_error(main)

if __name__ == "__main__":
    cli()

