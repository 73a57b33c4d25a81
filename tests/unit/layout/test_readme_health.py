"""The README's health table lists every rule the monitor runs, once, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from medsight_ray.health.config import HealthConfig
from medsight_ray.health.rules import ALL_RULES


def test_the_readme_health_table_lists_exactly_the_rules() -> None:
    text = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    table = text[text.index("| rule | fires when"):]
    table = table[:table.index("\n\n")]
    listed = re.findall(r"^\| `(\w+)`", table, flags=re.MULTILINE)
    assert sorted(listed) == sorted(ALL_RULES)
    # A rule that only warns by default says so in the table; a fatal one does not.
    for name in listed:
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}`"))
        assert ("(warns)" in row) is (not getattr(HealthConfig(), name).fatal), name
