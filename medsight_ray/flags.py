"""One command-line grammar for every entry point.

Every flag that two entry points share is defined here once, so it means the same
thing everywhere (the README's CLI table lists them; ``tests/unit/test_cli_grammar.py``
walks every parser):

    --data URI        a dataset to read (directory, s3://, gs:// or file://)
    --out DIR         where the command writes; default medsight_results/<command>-<time>.
                      Where a command reads an earlier run (report, tune --resume) it
                      names that run's directory and is required.
    --task T          the task family: concepts, grading or segmentation
    --stage S         one stage of the task (default: the task's only stage)
    --pipeline        every stage of the task, in order (a flag)
    --config FILE     YAML of config keys (a pipeline: one section per stage)
    --set KEY=VALUE   a config override, repeatable; in a pipeline ``stage.key=value``
                      targets one stage. Applied last: it wins over every other source.
    --workers N       shorthand for ``--set fit.workers=N``
    --seed N          the seed of everything random the command does (data, split,
                      training, search)
    --address ADDR    a Ray cluster to join (default RAY_ADDRESS, else a local Ray)
    --skip-check      skip the full dataset check
    --print-config    print the resolved config, one doc line a key, and exit
    --verbose         Ray's own output on the console too (default: in OUT/logs/)
    --mlflow [URI]    log the run to MLflow (no URI: a store in OUT/mlflow)

Precedence of config sources: defaults ← a search space's ``fixed`` ← ``--config``
← shorthands (``--workers``, ``--seed``) ← ``--set``.
"""

from __future__ import annotations

import argparse
import json
import textwrap
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from medsight_ray.config import flatten, format_config, load_yaml
from medsight_ray.errors import ConfigError, redact

RESULTS = Path("medsight_results")

#: The shared flags: argparse keyword arguments of each, by flag.
FLAGS: dict[str, dict[str, Any]] = {
    "--data": {"metavar": "URI", "help": "dataset to read: a directory, s3://, gs:// or file:// prefix"},
    "--out": {"metavar": "DIR", "help": "where this command writes (default medsight_results/<command>-<time>)"},
    "--task": {"metavar": "T", "help": "task family: concepts, grading or segmentation"},
    "--stage": {"metavar": "S", "help": "one stage of the task (default: the task's only stage)"},
    "--pipeline": {"action": "store_true", "help": "every stage of the task, in order"},
    "--config": {"metavar": "FILE", "help": "YAML of config keys (a pipeline: one section per stage)"},
    "--set": {"action": "append", "default": [], "metavar": "KEY=VALUE", "dest": "overrides",
              "help": "config override, repeatable; wins over every other source"},
    "--workers": {"type": int, "metavar": "N", "help": "shorthand for --set fit.workers=N"},
    "--seed": {"type": int, "metavar": "N", "help": "seed of everything random this command does"},
    "--address": {"metavar": "ADDR", "help": "Ray cluster to join (default RAY_ADDRESS, else a local Ray)"},
    "--skip-check": {"action": "store_true", "help": "skip the full dataset check (not recommended)"},
    "--print-config": {"action": "store_true",
                       "help": "print the resolved config with a doc line per key, and exit"},
    "--verbose": {"action": "store_true", "help": "Ray's own output on the console too (default: OUT/logs/)"},
    "--mlflow": {"nargs": "?", "const": "embedded", "metavar": "URI",
                 "help": "log the run to MLflow: a tracking URI (http://host:5000, sqlite:///f.db, a folder for a "
                         "SQLite store), or no value for a store in OUT/mlflow (pip install medsight_ray[mlflow])"},
    "--remedies": {"type": int, "metavar": "N",
                   "help": "after a fatal diagnosis, train again with its remedy (a config change), up to N "
                           "attempts; 0 = off (default: 2 in tune, which explores; 0 in train, which runs the "
                           "config asked for)"},
    "--decode-each-epoch": {"action": "store_true",
                            "help": "decode the images in every epoch, instead of once into a copy of raw pixels "
                                    "in the storage (STORAGE/decoded; ch x size^2 bytes an image), which is written "
                                    "only where the stored images are larger than the size trained at"},
}


#: What an entry point may change of a shared flag: whether it is required, its help
#: (the same meaning in that command's words), and ``repeat`` (a list of values).
CHANGEABLE = ("required", "help", "repeat")


def add(parser: argparse.ArgumentParser | Any, *flags: str, **changes: Any) -> None:
    """Add shared flags to ``parser`` (or a mutually exclusive group). ``changes`` maps a
    flag's dest (``out``, ``data``...) to changes among :data:`CHANGEABLE`, e.g.
    ``out={"required": True, "help": "..."}`` or ``data={"repeat": True}``."""
    for flag in flags:
        spec = dict(FLAGS[flag])
        dest = spec.get("dest", flag.lstrip("-").replace("-", "_"))
        extra = dict(changes.get(dest, {}))
        unknown = set(extra) - set(CHANGEABLE)
        if unknown:
            raise ValueError(f"{flag}: only {CHANGEABLE} may change, not {sorted(unknown)}")
        if extra.pop("repeat", False):
            extra.update(action="append", default=[])
        parser.add_argument(flag, **{**spec, **extra})


def default_out(args: argparse.Namespace, command: str) -> Path:
    """``--out``, else ``medsight_results/<command>-<YYYYmmdd-HHMMSS>``: a local directory.

    Raises:
        ConfigError: ``--out`` is a URI (``Path`` would fold ``s3://b`` into a local
            ``s3:/b``); only ``data`` writes to object storage (:func:`out_location`).
    """
    if args.out and "://" in args.out:
        raise ConfigError("--out must be a local directory for this command", where=f"--out {redact(args.out)}",
                          expected="a local directory (the console log and summary are written there)",
                          got="a URI", fix="give a local --out (tune stores trials and checkpoints at --storage URI)")
    return Path(args.out) if args.out else RESULTS / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def out_location(args: argparse.Namespace, command: str) -> str:
    """``--out`` as given when it is a URI (``s3://``, ``gs://``, ``file://``), else
    :func:`default_out` as a string: where a command that writes only a dataset writes."""
    if args.out and "://" in args.out:
        return str(args.out)
    return str(default_out(args, command))


def shorthands(args: argparse.Namespace) -> list[str]:
    """``--workers`` and ``--seed`` as overrides (applied before ``--set``)."""
    out = []
    if getattr(args, "workers", None) is not None:
        out.append(f"fit.workers={args.workers}")
    if getattr(args, "seed", None) is not None:
        out.append(f"fit.seed={args.seed}")
    return out


def remedies(args: argparse.Namespace, default: int) -> int:
    """``--remedies N``, checked; ``default`` when not given (the entry point's own).

    Raises:
        ConfigError: N is negative.
    """
    if args.remedies is None:
        return default
    if args.remedies < 0:
        raise ConfigError("--remedies is a count of attempts", where="--remedies", expected="0 (off) or more",
                          got=str(args.remedies))
    return int(args.remedies)


def _as_override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(list(value) if isinstance(value, tuple) else value)}"


def stage_overrides(stage_names: Sequence[str], config_file: str | None, overrides: Iterable[str],
                    before_set: Iterable[str] = ()) -> dict[str, list[str]]:
    """Each stage's overrides in order of precedence: ``--config`` ← ``before_set`` ←
    ``--set``. With several stages the YAML has one section per stage, and
    ``stage.key=value`` targets one stage (a plain key, every stage).

    Raises:
        ConfigError: a YAML section that names no stage.
    """
    names = list(stage_names)
    data = load_yaml(config_file) if config_file else {}
    several = len(names) > 1
    if several and data:
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError("unknown section in pipeline config", where=f"{config_file}: {unknown[0]}",
                              expected=f"one section per stage, among {names}", got=str(unknown))
    out: dict[str, list[str]] = {}
    for name in names:
        section = (data.get(name) or {}) if several else data
        out[name] = [_as_override(k, v) for k, v in flatten(section).items()] + list(before_set)
    for item in overrides:
        head, _, rest = item.partition(".")
        targets = [head] if several and head in names else names
        for name in targets:
            out[name].append(rest if targets == [head] and several else item)
    return out


def format_configs(configs: Mapping[str, tuple[Any, Mapping[str, str]]], task: str) -> str:
    """``--print-config`` output of one stage (flat keys), or of a pipeline (a section per
    stage, as ``--config`` reads a pipeline's file). ``configs`` maps a stage name to its
    resolved config and the notes of its keys (a search space's sampled keys)."""
    several = len(configs) > 1
    parts = []
    for name, (cfg, notes) in configs.items():
        text = format_config(cfg, f"{task}/{name}: the config that will run", notes)
        parts.append(f"{name}:\n{textwrap.indent(text, '  ')}" if several else text)
    return "\n".join(parts)
