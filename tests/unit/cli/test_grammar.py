"""One CLI grammar: every entry point's parser, walked.

A shared flag (``medsight_ray.flags.FLAGS``) means the same in every entry point: same
type, action, default and choices; only whether it is required, its help wording and
whether it repeats may differ. No entry point takes a positional path, every one that
writes has ``--out``, and every one is installed as a console script.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from medsight_ray import flags, localcluster, predict, train
from medsight_ray.data import __main__ as data_cli
from medsight_ray.report import __main__ as report_cli
from medsight_ray.tune import __main__ as tune_cli
from medsight_ray.zoo import __main__ as zoo_cli

ROOT = Path(__file__).resolve().parents[3]
ENTRY_POINTS = {"train": train, "tune": tune_cli, "zoo": zoo_cli, "data": data_cli, "report": report_cli,
                "predict": predict, "localcluster": localcluster}
#: What a command shares with the others: compared flag by flag.
COMPARED = ("type", "nargs", "const", "choices", "metavar", "dest")


def _parsers(name: str, parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """The parser and every sub-command's parser, with their command paths."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from _parsers(f"{name} {sub}", child)


def _all() -> list[tuple[str, argparse.ArgumentParser]]:
    return [p for name, module in ENTRY_POINTS.items() for p in _parsers(name, module.build_parser())]


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings if s.startswith("--")}


def test_every_entry_point_is_walked() -> None:
    commands = {name for name, _ in _all()}
    assert {"train", "tune", "zoo", "report", "predict", "data synth", "data check", "data dryrun",
            "data import vindr", "data import folders", "data import pairs"} <= commands


@pytest.mark.parametrize("command, parser", _all(), ids=[n for n, _ in _all()])
def test_shared_flags_mean_the_same_everywhere(command: str, parser: argparse.ArgumentParser) -> None:
    reference = argparse.ArgumentParser()
    for flag in flags.FLAGS:
        flags.add(reference, flag)
    expected = _options(reference)
    for flag, action in _options(parser).items():
        if flag not in expected:
            continue
        want = expected[flag]
        for attribute in COMPARED:
            assert getattr(action, attribute) == getattr(want, attribute), f"{command} {flag}: {attribute}"
        repeats = isinstance(action, argparse._AppendAction)
        if not repeats or flag == "--set":
            assert type(action) is type(want), f"{command} {flag}: action {type(action).__name__}"
            assert action.default == want.default, f"{command} {flag}: default {action.default!r}"


@pytest.mark.parametrize("command, parser", _all(), ids=[n for n, _ in _all()])
def test_no_positional_paths(command: str, parser: argparse.ArgumentParser) -> None:
    positional = [a.dest for a in parser._actions
                  if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]
    assert positional == [], f"{command} takes {positional} by position; use --data/--out"


def test_out_is_where_every_writing_command_writes() -> None:
    writers = {n: p for n, p in _all() if n in ("train", "tune", "zoo", "report", "predict", "data synth",
                                                  "data import vindr", "data import folders",
                                                  "data import pairs")}
    for command, parser in writers.items():
        out = _options(parser).get("--out")
        assert out is not None, f"{command} has no --out"
        # Only the report reads an earlier run's directory, so only it must be told.
        assert out.required is (command == "report"), f"{command}: --out required={out.required}"
    for command in ("train", "tune", "data check", "data dryrun", "zoo"):
        assert "--data" in _options(dict(_all())[command]), f"{command} has no --data"


def test_pipeline_is_a_flag_wherever_it_appears() -> None:
    for command in ("train", "tune"):
        action = _options(dict(_all())[command])["--pipeline"]
        assert isinstance(action, argparse._StoreTrueAction), command


def test_every_entry_point_is_a_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    targets = {}
    for script, target in scripts.items():
        module, _, attr = target.partition(":")
        targets[module] = (script, attr)
    for name, module in ENTRY_POINTS.items():
        assert module.__name__ in targets, f"no console script for {module.__name__}"
        script, attr = targets[module.__name__]
        assert script == f"medsight-{name}" and callable(getattr(module, attr))


def test_readme_documents_the_shared_flags() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    for flag in flags.FLAGS:
        assert f"`{flag}" in table, f"{flag} missing from the README's CLI table"
    for name in ENTRY_POINTS:
        assert f"medsight-{name}" in table


@pytest.mark.parametrize("command", ["train", "tune"])
def test_set_wins_over_shorthands_and_seed_sets_the_training_seed(command: str, capsys) -> None:
    module = ENTRY_POINTS[command]
    base = ["--task", "grading", "--print-config"]
    assert module.main([*base, "--workers", "2", "--seed", "7"]) == 0
    text = capsys.readouterr().out
    assert "fit.workers: 2 " in text and "fit.seed: 7 " in text
    assert module.main([*base, "--workers", "2", "--set", "fit.workers=3"]) == 0
    assert "fit.workers: 3 " in capsys.readouterr().out


def test_out_is_a_uri_only_where_a_dataset_is_written_and_keys_are_never_shown() -> None:
    """``Path`` folds ``s3://b/x`` into the local ``s3:/b/x``: a URI --out must reach the
    dataset writer as given, and be refused where the command writes local files."""
    from medsight_ray.errors import ConfigError, redact

    uri = "s3://KEY:SECRET@bucket/data?endpoint_override=host:9000&scheme=http"
    assert flags.out_location(argparse.Namespace(out=uri), "data") == uri
    assert flags.out_location(argparse.Namespace(out="local/dir"), "data") == "local/dir"
    with pytest.raises(ConfigError, match="must be a local directory") as err:
        flags.default_out(argparse.Namespace(out=uri), "train")
    assert "s3://bucket/data" in str(err.value) and "SECRET" not in str(err.value)
    assert redact(uri) == "s3://bucket/data" and redact("/a/b") == "/a/b"
