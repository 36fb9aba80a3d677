"""``robustlab-plot``: draw figures from the results a run (or a multirun) logged.

  robustlab-plot rpr   --run RUN_DIR           --out OUT_DIR
  robustlab-plot sweep --multirun MULTIRUN_DIR --out OUT_DIR [--name NAME]
  robustlab-plot linear --multirun MULTIRUN_DIR --out OUT_DIR

Bad input ends with one ``error:`` line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robustlab.errors import RobustlabError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robustlab-plot", description="Figures from logged robustlab results (never trains).")
    sub = p.add_subparsers(dest="command", required=True)
    rpr = sub.add_parser("rpr", help="the paper's Figures 1-5 and the M vs M_R overlay from one run directory")
    rpr.add_argument("--run", required=True, type=Path, help="run directory written by `robustlab` (holds metrics.json)")
    rpr.add_argument("--out", required=True, type=Path, help="folder for the PNG and PDF files")
    sweep = sub.add_parser("sweep", help="robust ratio vs MAX_STEPS per perturbation setting over a multirun")
    sweep.add_argument("--multirun", required=True, type=Path, help="Hydra multirun folder (one job folder per run)")
    sweep.add_argument("--out", required=True, type=Path, help="folder for the figure and its CSV")
    sweep.add_argument("--name", default="sweep_robust_ratio", help="file name stem (default: %(default)s)")
    linear = sub.add_parser("linear", help="the blog's table and figures (shared/seeds/002) from a multirun of experiment=linear_robust")
    linear.add_argument("--multirun", required=True, type=Path, help="Hydra multirun folder of experiment=linear_robust (or one run folder)")
    linear.add_argument("--out", required=True, type=Path, help="folder for linear_table.{csv,tex} and the PNG and PDF files")
    return p


def run(args: argparse.Namespace) -> list[Path]:
    # Imported here so `--help` and argument errors answer without loading matplotlib and torch.
    if args.command == "rpr":
        from robustlab.plotting.rpr import plot_run

        return plot_run(args.run, args.out)
    if args.command == "linear":
        from robustlab.plotting.linear import plot_linear

        return plot_linear(args.multirun, args.out)
    from robustlab.plotting.sweep import plot_sweep

    return plot_sweep(args.multirun, args.out, args.name)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        written = run(args)
    except RobustlabError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
