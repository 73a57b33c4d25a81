"""Loading never runs code: checkpoints with ``weights_only=True``, YAML with ``safe_load``.

A checkpoint or a config file from someone else must not be able to execute anything.
The source is scanned, so that a new loader cannot slip in unsafely, and the two
loaders are shown refusing a file that would run code.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

from medsight_ray.config import load_yaml
from medsight_ray.errors import ConfigError
from medsight_ray.fit.checkpoint import load_model_file

PACKAGE = Path(__file__).resolve().parents[3] / "medsight_ray"


def _calls(pattern: str) -> list[tuple[str, str]]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        for line in path.read_text().splitlines():
            code = line.split("#")[0]
            if re.search(pattern, code) and "``" not in code:
                found.append((path.name, code.strip()))
    return found


def test_every_torch_load_is_weights_only() -> None:
    calls = _calls(r"torch\.load\(")
    assert calls and all("weights_only=True" in code for _, code in calls), calls


def test_no_unsafe_deserialisers() -> None:
    assert _calls(r"yaml\.(load|unsafe_load|full_load)\(|pickle\.loads?\(|yaml\.Loader") == []
    # Writing YAML runs nothing; of the writers only safe_dump (plain types) is used.
    assert [c for c in _calls(r"yaml\.") if not re.search(r"safe_load|safe_dump|YAMLError", c[1])] == []


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/medsight_pwned"),))


def test_a_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(ConfigError, match="checkpoint does not load"):
        load_model_file(tmp_path)
    assert not Path("/tmp/medsight_pwned").exists()


def test_a_yaml_tag_that_builds_objects_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("fit: !!python/object/apply:os.system ['touch /tmp/medsight_pwned']\n")
    with pytest.raises(ConfigError):
        load_yaml(tmp_path / "c.yaml")
    assert not Path("/tmp/medsight_pwned").exists()
