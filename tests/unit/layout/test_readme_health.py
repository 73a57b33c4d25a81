"""The README's health table is the one the rule registry generates: every rule the
monitor runs, once, in the order it judges them, with its defaults as its class has them."""

from __future__ import annotations

from pathlib import Path

from medsight_ray.health.config import HealthConfig
from medsight_ray.health.rules import ALL_RULES, readme_table


def test_the_readme_health_table_is_the_registrys() -> None:
    text = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    table = text[text.index("| rule | fires when"):]
    table = table[:table.index("\n\n")]
    # On a mismatch, paste medsight_ray.health.rules.readme_table() into the README.
    assert table == readme_table()
    rows = table.splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == list(ALL_RULES)
    # A rule that only warns by default says so in the table; a fatal one does not.
    for name, row in zip(ALL_RULES, rows):
        assert ("(warns)" in row) is (not getattr(HealthConfig(), name).fatal), name
