"""cluster/: launcher YAMLs pass Ray's own validator, KubeRay manifests name the right
entrypoint, documented commands use flags that exist, nothing listens in public."""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from medsight_ray.health.export import PROMETHEUS_NAMES

ROOT = Path(__file__).resolve().parents[3]
CLUSTER = ROOT / "cluster"
LAUNCHERS = ["aws.yaml", "gcp.yaml"]


def _launcher(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_yaml_passes_rays_validator(name: str) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _launcher(name)
    validate_config(prepare_config(copy.deepcopy(config)))
    assert config["max_workers"] <= 16 and 0 < config["idle_timeout_minutes"] <= 30
    head = config["available_node_types"][config["head_node_type"]]
    assert head.get("resources", {}).get("GPU", 0) == 0
    gpu_types = [t for t in config["available_node_types"].values() if t.get("resources", {}).get("GPU")]
    assert gpu_types and all(t["min_workers"] == 0 for t in gpu_types)  # GPUs only on demand


@pytest.mark.parametrize("name", LAUNCHERS)
def test_the_validator_rejects_a_broken_copy(name: str) -> None:
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = _launcher(name)
    broken["max_wrokers"] = 3
    with pytest.raises(jsonschema.ValidationError, match="max_wrokers"):
        validate_config(prepare_config(broken))


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_installs_pinned_stack_and_opens_nothing(name: str) -> None:
    config = _launcher(name)
    text = (CLUSTER / name).read_text()
    assert "0.0.0.0" not in text
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    setup = config["setup_commands"]
    torch_at = next(i for i, c in enumerate(setup) if "torch==2.14.1 torchvision==0.29.1" in c)
    package_at = next(i for i, c in enumerate(setup) if "-e ~/medsight_ray" in c)
    assert torch_at < package_at
    for node in config["available_node_types"].values():  # no security group or firewall opened by us
        assert "SecurityGroupIds" not in node["node_config"] and "networkInterfaces" not in node["node_config"]


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_turns_token_auth_on_for_every_node(name: str) -> None:
    config = _launcher(name)
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        start = next(c for c in commands if "ray start" in c)
        assert start.index("export RAY_AUTH_MODE=token;") < start.index("ray start")
    # The token the client generated reaches every node over SSH, never the image.
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert "ray get-auth-token --generate" in (CLUSTER / name).read_text()


def _manifests() -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted((CLUSTER / "kuberay").glob("*.yaml"))}


def test_kuberay_manifests_parse_and_name_the_tune_entrypoint() -> None:
    from medsight_ray.tune.__main__ import build_parser

    docs = {k: v for k, v in _manifests().items() if v["kind"] != "NetworkPolicy"}
    assert {d["kind"] for d in docs.values()} == {"RayCluster", "RayJob"}
    assert all(d["apiVersion"] == "ray.io/v1" for d in docs.values())
    job = docs["rayjob.yaml"]["spec"]
    argv = shlex.split(job["entrypoint"])
    assert argv[:3] == ["python", "-m", "medsight_ray.tune"]
    args, unknown = build_parser().parse_known_args(argv[3:])
    assert unknown == [] and args.task == "concepts" and args.pipeline and args.data.startswith("s3://")
    assert args.storage.startswith("s3://")
    assert job["shutdownAfterJobFinishes"] is True
    for spec in (docs["raycluster.yaml"]["spec"], job["rayClusterSpec"]):
        assert spec["headGroupSpec"]["serviceType"] == "ClusterIP"
        assert spec["rayVersion"].startswith("2.60") and spec["authOptions"] == {"mode": "token"}
        gpus = [c["resources"]["limits"].get("nvidia.com/gpu") for g in spec["workerGroupSpecs"]
                for c in g["template"]["spec"]["containers"]]
        assert gpus and all(g == 1 for g in gpus)


def test_kuberay_network_policy_admits_only_the_clusters_pods_and_the_operator() -> None:
    policy = _manifests()["networkpolicy.yaml"]
    assert policy["kind"] == "NetworkPolicy" and policy["apiVersion"] == "networking.k8s.io/v1"
    spec = policy["spec"]
    ray_pods = {"ray.io/is-ray-node": "yes"}
    assert spec["podSelector"]["matchLabels"] == ray_pods and spec["policyTypes"] == ["Ingress"]
    (rule,) = spec["ingress"]
    assert "ports" not in rule  # every port of a Ray pod, from these peers only
    peers = [(p.get("namespaceSelector"), p["podSelector"]["matchLabels"]) for p in rule["from"]]
    assert peers == [(None, ray_pods), ({}, {"app.kubernetes.io/name": "kuberay-operator"})]
    readme = (CLUSTER / "README.md").read_text()
    assert "kubectl apply -f cluster/kuberay/networkpolicy.yaml" in readme


def _commands(markdown: Path) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", markdown.read_text(), flags=re.S)
    lines = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def _ray_option_names(words: list[str]) -> tuple[str, set[str]]:
    from ray.scripts.scripts import cli

    command = cli
    path = []
    for word in words:
        if hasattr(command, "commands") and word in command.commands:
            command = command.commands[word]
            path.append(word)
        else:
            break
    return " ".join(path), {opt for p in command.params for opt in p.opts}


def _python_module_parser(module: str):
    import importlib

    imported = importlib.import_module(module)
    if hasattr(imported, "__path__"):  # a package: its CLI is __main__
        imported = importlib.import_module(f"{module}.__main__")
    return imported.build_parser()


@pytest.mark.parametrize("doc", ["cluster/README.md", "README.md"])
def test_every_documented_command_uses_flags_that_exist(doc: str) -> None:
    checked = 0
    for line in _commands(ROOT / doc):
        argv = shlex.split(line)
        if "python" in argv and "-m" in argv:
            at = argv.index("-m")
            module = argv[at + 1]
            if module.startswith("medsight_ray"):
                parser = _python_module_parser(module)
                args, unknown = parser.parse_known_args(argv[at + 2:])
                assert unknown == [], f"{doc}: {line!r}: unknown {unknown}"
                checked += 1
        if argv[0] == "ray":
            head = argv[1:argv.index("--")] if "--" in argv else argv[1:]
            path, options = _ray_option_names(head)
            assert path, f"{doc}: {line!r}: no such ray command"
            for word in head:
                if word.startswith("-"):
                    assert word.split("=")[0] in options, f"{doc}: {line!r}: ray {path} has no {word}"
            checked += 1
    assert checked >= 5


def test_grafana_dashboard_shows_every_exported_metric() -> None:
    dashboard = json.loads((CLUSTER / "grafana_dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    used = set(re.findall(r"ray_medsight_[a-z_]+", exprs))
    assert used == set(PROMETHEUS_NAMES)


def test_the_fake_multinode_yaml_mirrors_aws_with_cpu_only_stand_ins() -> None:
    """Same worker node types as aws.yaml; each stand-in advertises its instance's CPUs
    and a marker per GPU, never a GPU (which would turn fit.use_gpu on); loopback only."""
    fake, aws = _launcher("fake_multinode.yaml"), _launcher("aws.yaml")
    assert fake["provider"]["type"] == "fake_multinode"
    assert fake["provider"]["gcs_address"].startswith("127.0.0.1:")
    workers = {k: v for k, v in fake["available_node_types"].items() if k != fake["head_node_type"]}
    aws_workers = {k: v for k, v in aws["available_node_types"].items() if k != aws["head_node_type"]}
    assert workers.keys() == aws_workers.keys()
    for name, node in workers.items():
        assert "GPU" not in node["resources"]
        assert node["resources"]["CPU"] == aws_workers[name]["resources"]["CPU"]
        assert node["resources"]["a10g_standin"] == aws_workers[name]["resources"]["GPU"]
        assert node["min_workers"] == 0 and node["max_workers"] <= aws_workers[name]["max_workers"]
    assert 0 < fake["idle_timeout_minutes"] < 1
    assert "0.0.0.0" not in (CLUSTER / "fake_multinode.yaml").read_text()
