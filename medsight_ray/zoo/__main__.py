"""``python -m medsight_ray.zoo``: prove the health monitor on named failure recipes.

    python -m medsight_ray.zoo [--data URI ...] [--out DIR] [--verify] [--only NAME[,NAME]] [--set KEY=VALUE]

Prints a table (the first fatal rule, whether it names a correct cause, stopped, the
ground truth, and every rule that fired at epoch:step) and writes
``OUT/zoo.json``; the full output goes to ``OUT/logs/``. Each entry trains once with
every rule warning only, and is stopped where its fatal rules would have stopped it
(the run is deterministic). ``--verify`` also checks each pathology in its metric
history to the end of the run.
``--data`` (repeatable, one per task) uses your own dataset for the healthy entries of
its task. ``--config`` and ``--set`` change every entry's config (after the entry's own
recipe); ``--seed`` sets every entry's training seed. Exit code 0 when every entry's
first fatal rule names a correct cause and stopped it, and no healthy entry is
diagnosed, else 1; 2 on bad
input (an unknown entry fails before Ray starts).
"""

from __future__ import annotations

import argparse

from medsight_ray import console, flags
from medsight_ray.errors import exit_on_error
from medsight_ray.raylocal import set_local_env


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests and docs."""
    p = argparse.ArgumentParser(prog="python -m medsight_ray.zoo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    # --data names one dataset per task here, so it repeats.
    flags.add(p, "--data", data={"repeat": True})
    flags.add(p, "--out", "--config", "--set", "--seed", "--address", "--verbose")
    p.add_argument("--verify", action="store_true", help="check each pathology in its metric history")
    p.add_argument("--only", action="append", default=[], metavar="NAME[,NAME...]",
                   help="run only these entries (repeat or separate with commas)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    # Before anything imports ray: local Ray then binds every listener to 127.0.0.1.
    set_local_env()
    args = build_parser().parse_args(argv)

    from medsight_ray.data.store import list_dataset, read_info
    from medsight_ray.raylocal import ray_for_run
    from medsight_ray.zoo.entries import check_configs, format_table, run_zoo

    names = tuple(n.strip() for item in args.only for n in item.split(",") if n.strip())
    extra = tuple(flags.stage_overrides(["zoo"], args.config, args.overrides, flags.shorthands(args))["zoo"])
    check_configs(names, extra)  # an unknown name or key fails now, before Ray starts
    data = {read_info(list_dataset(d)).task: d for d in args.data}
    out = flags.default_out(args, "zoo")
    with console.session(out, args.verbose) as log:
        with ray_for_run(args.address, log):
            rows = run_zoo(out, data, args.verify, names, extra)
        console.say(format_table(rows))
        console.say(f"wrote {out / 'zoo.json'}")
    ok = all(r["correct_cause"] and (r["stopped"] or not r["causes"]) for r in rows if r["detectable"])
    return 0 if ok else 1


cli = exit_on_error(main)

if __name__ == "__main__":
    cli()
