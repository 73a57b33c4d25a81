"""``python -m medsight_ray.health zoo``: prove the monitor on named failure configs.

    python -m medsight_ray.health zoo [--data DIR ...] [--out DIR] [--verify] [--only NAME ...]

Prints a table (expected rule, detected rule, epoch detected, stopped) and writes
``OUT/zoo.json``. ``--verify`` first runs each pathological entry with the monitor off
and checks the pathology in its metric. ``--data`` (repeatable) uses your own dataset
for the healthy entries of its task. Exit code 0 when every entry is detected by its
rule and stopped and no healthy entry is diagnosed, else 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medsight_ray.errors import exit_on_error
from medsight_ray.raylocal import set_local_env


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    # Before anything imports ray: local Ray then binds every listener to 127.0.0.1.
    set_local_env()
    p = argparse.ArgumentParser(prog="python -m medsight_ray.health", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    zoo = sub.add_parser("zoo", help="run the pathology zoo")
    zoo.add_argument("--data", action="append", default=[], help="dataset for the healthy entries of its task")
    zoo.add_argument("--out", default="medsight_results/zoo")
    zoo.add_argument("--verify", action="store_true", help="first show each pathology with the monitor off")
    zoo.add_argument("--only", action="append", default=[], metavar="NAME[,NAME...]",
                     help="run only these entries (repeat or separate with commas)")
    zoo.add_argument("--address", help="Ray address (default: local Ray on 127.0.0.1)")
    args = p.parse_args(argv)

    from medsight_ray.data.store import list_dataset, read_info
    from medsight_ray.raylocal import init_ray
    from medsight_ray.zoo.entries import format_table, run_zoo, select_entries

    data = {read_info(list_dataset(d)).task: d for d in args.data}
    init_ray(args.address)
    names = tuple(n.strip() for item in args.only for n in item.split(",") if n.strip())
    select_entries(names)  # an unknown name fails before Ray starts
    rows = run_zoo(Path(args.out), data, args.verify, names)
    print(format_table(rows))
    print(f"wrote {Path(args.out) / 'zoo.json'}")
    ok = all((r["detected_rule"] == r["expected_rule"] and r["stopped"]) if r["expected_rule"]
             else r["diagnoses"] == 0 for r in rows)
    return 0 if ok else 1


cli = exit_on_error(main)

if __name__ == "__main__":
    cli()
