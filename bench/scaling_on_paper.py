"""What would a realistic sweep cost on a GPU cluster? An estimate, every assumption a flag.

    python bench/scaling_on_paper.py [--trials 64] [--gpus 8] [--train-rows 15000] [--val-rows 3000]
                                     [--train-ips 300] [--forward-ips 900] [--stage1-epochs 20]
                                     [--later-epochs 10] [--fixed-s 60] [--kept 0.36]
                                     [--out bench/results/scaling_on_paper.json]

Nothing here is measured on a GPU: the throughputs are public ViT-B/16 figures for one
A10G (AMP, batch 64, 224 px) and a forward-only rule of thumb; ``--fixed-s`` is the
per-trial start-up measured by ``bench/ray_overhead.py``; ``--kept`` is the share of
trial-epochs that health + ASHA kept in ``bench/zoo_sweep.py`` (arm a over arm c). When
``bench/results/zoo_sweep_interleaved.json`` exists, ``--kept`` defaults to its figure.
Stage 1 trains the whole network; stages 2 and 3 train small heads on a frozen backbone,
so they run at the forward-only rate. Wall time assumes one trial per GPU and that a
stopped trial's GPU goes straight to the next pending trial.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "bench/results/zoo_sweep_interleaved.json"


def _kept_default() -> float:
    if ZOO.is_file():
        return float(json.loads(ZOO.read_text())["ratios"]["trial_epochs"]["a_over_c"])
    return 0.36


def estimate(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """GPU-hours and wall hours per part of the sweep, without and with early stopping."""
    val_s = args.val_rows / args.forward_ips
    parts = {"stage 1": (args.train_rows / args.train_ips + val_s, args.stage1_epochs, 1),
             "stages 2 + 3": (args.train_rows / args.forward_ips + val_s, args.later_epochs, 2)}
    out: dict[str, dict[str, float]] = {}
    for name, (epoch_s, epochs, stages) in parts.items():
        trials = args.trials * stages
        full = trials * (epoch_s * epochs + args.fixed_s) / 3600
        stopped = trials * (epoch_s * epochs * args.kept + args.fixed_s) / 3600
        out[name] = {"epoch_s": epoch_s, "trial_min": (epoch_s * epochs + args.fixed_s) / 60,
                     "gpu_h_no_stopping": full, "wall_h_no_stopping": full / args.gpus,
                     "gpu_h_health_asha": stopped, "wall_h_health_asha": stopped / args.gpus}
    out["whole sweep"] = {k: sum(v[k] for v in out.values()) for k in ("gpu_h_no_stopping", "wall_h_no_stopping",
                                                                        "gpu_h_health_asha", "wall_h_health_asha")}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=64, help="trials per stage")
    p.add_argument("--gpus", type=int, default=8, help="nodes with one GPU each, one trial per GPU")
    p.add_argument("--train-rows", type=int, default=15000)
    p.add_argument("--val-rows", type=int, default=3000)
    p.add_argument("--train-ips", type=float, default=300.0, help="training images/s per GPU, whole network")
    p.add_argument("--forward-ips", type=float, default=900.0, help="images/s per GPU, forward only")
    p.add_argument("--stage1-epochs", type=int, default=20)
    p.add_argument("--later-epochs", type=int, default=10)
    p.add_argument("--fixed-s", type=float, default=60.0, help="start-up seconds per trial")
    p.add_argument("--kept", type=float, default=_kept_default(), help="share of trial-epochs health + ASHA keep")
    p.add_argument("--out", default=str(ROOT / "bench/results/scaling_on_paper.json"))
    args = p.parse_args()
    table = estimate(args)
    print(f"{'part':<14} {'epoch s':>8} {'trial min':>9} {'GPU-h none':>10} {'wall h none':>11} "
          f"{'GPU-h health+ASHA':>17} {'wall h health+ASHA':>18}")
    for name, r in table.items():
        epoch, trial = (f"{r[k]:.{d}f}" if k in r else "-" for k, d in (("epoch_s", 0), ("trial_min", 1)))
        print(f"{name:<14} {epoch:>8} {trial:>9} "
              f"{r['gpu_h_no_stopping']:>10.1f} {r['wall_h_no_stopping']:>11.1f} {r['gpu_h_health_asha']:>17.1f} "
              f"{r['wall_h_health_asha']:>18.1f}")
    whole = table["whole sweep"]
    print(f"health + ASHA keep {args.kept:.0%} of trial-epochs: {whole['gpu_h_health_asha']:.1f} GPU-h against "
          f"{whole['gpu_h_no_stopping']:.1f} ({whole['gpu_h_health_asha'] / whole['gpu_h_no_stopping'] - 1:+.0%})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"assumptions": vars(args), "estimate": table}, indent=2))


if __name__ == "__main__":
    main()
