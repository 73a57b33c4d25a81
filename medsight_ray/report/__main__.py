"""``python -m medsight_ray.report --out DIR``: the report of a sweep.

``--out`` names the sweep's output directory (the ``--out`` of ``python -m
medsight_ray.tune``), as in every entry point (:mod:`medsight_ray.flags`). Reads
``DIR/summary.json`` and writes ``DIR/report/report.md`` and ``report.html`` with PNG
figures: a trial table with health, metric curves coloured by health, a health
timeline, Optuna hyperparameter importance, CAM overlays of the best concept model,
and a warning for every best value on the edge of its search range. Exit codes: 0
written, 2 not a sweep directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medsight_ray import flags
from medsight_ray.errors import exit_on_error


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests and docs."""
    p = argparse.ArgumentParser(prog="python -m medsight_ray.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add(p, "--out", out={"required": True, "help": "the sweep's output directory (holds summary.json); "
                                                           "the report goes to DIR/report"})
    p.add_argument("--cams", type=int, default=4, help="validation images with CAM overlays (0 = none)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    from medsight_ray.report.build import build_report, load_summary
    from medsight_ray.report.summary import console_summary

    args = build_parser().parse_args(argv)
    paths = build_report(args.out, cams=args.cams)
    print(console_summary(load_summary(Path(args.out))))
    print(f"report: {paths['markdown']} and {paths['html']}")
    return 0


cli = exit_on_error(main)

if __name__ == "__main__":
    cli()
