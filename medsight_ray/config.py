"""Typed, frozen configuration built from YAML and ``--set key=value`` overrides.

Every config is a tree of frozen dataclasses. :func:`build` merges, in order, the
defaults, a YAML file (read with ``yaml.safe_load``) and dotted overrides such as
``optim.lr=3e-4`` or ``model.backbone.name=resnet18``. Unknown keys are rejected with
the list of valid ones; values are coerced to the declared field types, so a Tune
trial (whose sampled values arrive as a flat dict of dotted keys) can vary any knob.
A setting that is a choice is a ``Literal`` type: a value outside it is refused when
the config is built, with the valid values listed, before any Ray process starts.

Every leaf key is documented in its dataclass's ``Attributes:`` docstring section;
:func:`describe` reads those lines, and :func:`format_config` prints a resolved config
as YAML with one comment per key (``--print-config``), loadable again with ``--config``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from medsight_ray.errors import ConfigError

T = TypeVar("T")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Convert ``value`` to the annotated type ``hint`` or raise a named error."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError("value has the wrong type", where=where, expected=str(hint), got=repr(value))
    if origin is typing.Literal:
        choices = list(args)
        if value in choices:
            return value
        raise ConfigError("value is not one of the choices", where=where, expected=f"one of {choices}",
                          got=repr(value))
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError("expected a mapping", where=where, expected=f"keys of {hint.__name__}", got=repr(value))
        return from_dict(hint, value, where)
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError("expected a list", where=where, expected=str(hint), got=repr(value))
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError("expected a mapping", where=where, expected=str(hint), got=repr(value))
        return dict(value)
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError("value has the wrong type", where=where, expected="true or false", got=repr(value))
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError("value has the wrong type", where=where, expected="a number", got=repr(value))
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError("value has the wrong type", where=where, expected="a number", got=repr(value)) from None
    if hint is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError("value has the wrong type", where=where, expected="an integer", got=repr(value))
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError("value has the wrong type", where=where, expected="an integer",
                              got=repr(value)) from None
    if hint is str:
        if isinstance(value, (dict, list)):
            raise ConfigError("value has the wrong type", where=where, expected="a string", got=repr(value))
        return str(value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a (nested) mapping; unknown keys are rejected."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError("unknown config key", where=f"{where}.{unknown[0]}",
                          expected=f"keys of {where}: {sorted(fields)}", got=str(unknown))
    hints = _hints(cls)
    values = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError("invalid config", where=where, expected=f"fields of {cls.__name__}", got=str(err)) from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain nested dicts and lists (JSON/YAML-safe)."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(cfg)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping → ``{"a.b.c": value}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def parse_value(text: str) -> Any:
    """Parse an override value: YAML scalars, plus floats YAML 1.1 misses (``1e-4``)."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(cfg: T, overrides: Mapping[str, Any] | Iterable[str]) -> T:
    """Return ``cfg`` with dotted overrides applied.

    Args:
        overrides: ``{"optim.lr": 1e-3}`` or ``["optim.lr=1e-3", ...]``.
    """
    if not isinstance(overrides, Mapping):
        pairs: dict[str, Any] = {}
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep or not key:
                raise ConfigError("override is not key=value", where=f"--set {item}",
                                  expected="dotted.key=value, e.g. optim.lr=3e-4", got=repr(item))
            pairs[key.strip()] = parse_value(raw.strip())
        overrides = pairs
    data = to_dict(cfg)
    valid = flatten(data)
    for key, value in overrides.items():
        node = data
        parts = key.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                prefix = ".".join(parts[:depth])
                options = sorted(k for k in valid if k.startswith(prefix))
                raise ConfigError("unknown config key", where=f"--set {key}",
                                  expected=f"one of {options}", got=repr(key))
            if depth == len(parts) - 1:
                node[part] = value
            else:
                node = node[part]
    return from_dict(type(cfg), data)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with ``safe_load``; errors name the file."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError("config file does not exist", where=str(path), expected="a YAML file", got="no such file")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError("config file is not valid YAML", where=str(path), expected="YAML", got=str(err)) from None
    if not isinstance(data, dict):
        raise ConfigError("config file is not a mapping", where=str(path), expected="key: value pairs",
                          got=type(data).__name__)
    return data


def build(cls: type[T], yaml_path: str | Path | None = None, overrides: Iterable[str] | Mapping[str, Any] = ()) -> T:
    """Defaults ← YAML file ← overrides."""
    cfg = cls()
    if yaml_path is not None:
        cfg = apply_overrides(cfg, flatten(load_yaml(yaml_path)))
    return apply_overrides(cfg, overrides)


_ENTRY = re.compile(r"^(?P<names>[A-Za-z_][\w]*(?:\s*,\s*[A-Za-z_][\w]*)*):\s*(?P<text>.*)$")


def field_docs(cls: type) -> dict[str, str]:
    """Field name → its documentation, from the ``Attributes:`` sections of ``cls`` and
    its bases (a subclass's entry wins). ``a, b: text`` documents both ``a`` and ``b``."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        doc = inspect.getdoc(klass) if "__doc__" in vars(klass) else None
        if not doc or "Attributes:" not in doc:
            continue
        names: list[str] = []
        for line in doc.split("Attributes:", 1)[1].splitlines()[1:]:
            if line and not line.startswith(" "):
                break  # the section ended
            stripped = line.strip()
            entry = _ENTRY.match(stripped) if line.startswith("    ") and not line.startswith("     ") else None
            if entry:
                names = [n.strip() for n in entry["names"].split(",")]
                for name in names:
                    docs[name] = entry["text"]
            elif stripped and names:
                for name in names:
                    docs[name] += " " + stripped
    return docs


def _first_sentence(text: str) -> str:
    head = re.split(r"(?<=[.])\s", text.strip(), maxsplit=1)[0]
    return head.rstrip(".")


def describe(cfg: Any, prefix: str = "") -> list[tuple[str, Any, str]]:
    """``(dotted key, value, one-line doc)`` for every leaf of a config, in field order;
    the doc is empty where the dataclass documents nothing for that field."""
    docs = field_docs(type(cfg))
    rows: list[tuple[str, Any, str]] = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            rows.extend(describe(value, f"{prefix}{f.name}."))
        else:
            rows.append((f"{prefix}{f.name}", value, _first_sentence(docs.get(f.name, ""))))
    return rows


def format_config(cfg: Any, title: str, notes: Mapping[str, str] | None = None) -> str:
    """The resolved config as YAML, ``key: value  # doc`` per leaf, under a comment line
    ``title``. ``--config`` reads it back (dotted keys are accepted). ``notes`` adds a
    word to a key's comment (a search space's ``sampled: ...``)."""
    notes = notes or {}
    rows = [(key, json.dumps(list(v) if isinstance(v, tuple) else v),
             f"[{notes[key]}] {doc}" if key in notes else doc) for key, v, doc in describe(cfg)]
    width = max(len(k) + len(v) + 2 for k, v, _ in rows)
    lines = [f"# {title}"]
    for key, value, doc in rows:
        entry = f"{key}: {value}"
        lines.append(f"{entry:<{width}}  # {doc}" if doc else entry)
    return "\n".join(lines)
