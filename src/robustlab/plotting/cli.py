"""``robustlab-plot``: draw figures from the results a run (or a multirun) logged.

  robustlab-plot rpr   --run RUN_DIR           --out OUT_DIR
  robustlab-plot sweep --multirun MULTIRUN_DIR --out OUT_DIR [--name NAME]
  robustlab-plot linear --multirun MULTIRUN_DIR --out OUT_DIR
  robustlab-plot dcgan  --run RUN_DIR | --multirun MULTIRUN_DIR --out OUT_DIR [--prefix PREFIX]
  robustlab-plot gan-augment --run RUN_DIR --out OUT_DIR
  robustlab-plot operating-point --multirun MULTIRUN_DIR --out OUT_DIR
  robustlab-plot inherent --run RUN_DIR --out OUT_DIR
  robustlab-plot rpr-vs-exact --run RUN_DIR --out OUT_DIR
  robustlab-plot corruptions --multirun MULTIRUN_DIR --out OUT_DIR [--name NAME]

Bad input ends with one ``error:`` line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustlab.errors import one_line_errors


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robustlab-plot", description="Figures from logged robustlab results (never trains)."
    )
    sub = p.add_subparsers(dest="command", required=True)
    rpr = sub.add_parser("rpr", help="the paper's Figures 1-5 and the M vs M_R overlay from one run directory")
    rpr.add_argument(
        "--run", required=True, type=Path, help="run directory written by `robustlab` (holds metrics.json)"
    )
    rpr.add_argument("--out", required=True, type=Path, help="folder for the PNG and PDF files")
    sweep = sub.add_parser("sweep", help="robust ratio vs MAX_STEPS per perturbation setting over a multirun")
    sweep.add_argument("--multirun", required=True, type=Path, help="Hydra multirun folder (one job folder per run)")
    sweep.add_argument("--out", required=True, type=Path, help="folder for the figure and its CSV")
    sweep.add_argument("--name", default="sweep_robust_ratio", help="file name stem (default: %(default)s)")
    linear = sub.add_parser(
        "linear", help="the blog's table and figures (shared/seeds/002) from a multirun of experiment=linear_robust"
    )
    linear.add_argument(
        "--multirun",
        required=True,
        type=Path,
        help="Hydra multirun folder of experiment=linear_robust (or one run folder)",
    )
    linear.add_argument(
        "--out", required=True, type=Path, help="folder for linear_table.{csv,tex} and the PNG and PDF files"
    )
    dcgan = sub.add_parser(
        "dcgan",
        help=(
            "DCGAN figures (shared/seeds/000) from a run of experiment=dcgan_mnist / dcgan_cifar10, or every job of a "
            "multirun"
        ),
    )
    where = dcgan.add_mutually_exclusive_group(required=True)
    where.add_argument("--run", type=Path, help="run directory written by `robustlab experiment=dcgan_...`")
    where.add_argument(
        "--multirun",
        type=Path,
        help="Hydra multirun folder of such runs: each job's figures, dcgan_sweep.csv and a comparison",
    )
    dcgan.add_argument("--out", required=True, type=Path, help="folder for the PNG and PDF files")
    dcgan.add_argument(
        "--prefix", default="dcgan", help="file name prefix of a single run's figures (default: %(default)s)"
    )
    augment = sub.add_parser(
        "gan-augment",
        help="M vs M_R vs M_R+G and the kept / rejected generated images from a run of experiment=rpr_gan_augment",
    )
    augment.add_argument(
        "--run", required=True, type=Path, help="run directory written by `robustlab experiment=rpr_gan_augment`"
    )
    augment.add_argument("--out", required=True, type=Path, help="folder for the PNG and PDF files")
    op = sub.add_parser(
        "operating-point",
        help="robust ratio of M vs scheme strength and the crossing table from experiment=operating_point",
    )
    op.add_argument(
        "--multirun", required=True, type=Path, help="multirun folder of experiment=operating_point (one job per seed)"
    )
    op.add_argument("--out", required=True, type=Path, help="folder for operating_point.{png,pdf} and its CSVs")
    op.add_argument(
        "--log-x",
        default="",
        help="comma-separated panels (pixels, gaussian, ...) drawn on a log strength axis, for grids that span "
        "decades (Fashion-MNIST's k from 1 to 784); default: none",
    )
    inherent = sub.add_parser(
        "inherent",
        help="per-point agreement across models, hardest points, per class, from a run of experiment=rpr_inherent",
    )
    inherent.add_argument(
        "--run", required=True, type=Path, help="run directory written by `robustlab experiment=rpr_inherent`"
    )
    inherent.add_argument(
        "--out", required=True, type=Path, help="folder for the PNG and PDF files and inherent_agreement.csv"
    )
    exact = sub.add_parser(
        "rpr-vs-exact", help="RPR p̂ beside exact / certified radii from a run of experiment=rpr_vs_exact"
    )
    exact.add_argument(
        "--run", required=True, type=Path, help="run directory written by `robustlab experiment=rpr_vs_exact`"
    )
    exact.add_argument("--out", required=True, type=Path, help="folder for the PNG and PDF files")
    corruptions = sub.add_parser(
        "corruptions",
        help="examples of each corruption per severity, with its robust ratio, "
        "from a multirun of experiment=rpr_sweep run with rpr.perturbed_examples > 0",
    )
    corruptions.add_argument(
        "--multirun", required=True, type=Path, help="Hydra multirun folder over corruptions and severities"
    )
    corruptions.add_argument("--out", required=True, type=Path, help="folder for the PNG and PDF files and the CSV")
    corruptions.add_argument("--name", default="corruptions", help="file name stem (default: %(default)s)")
    return p


def run(args: argparse.Namespace) -> list[Path]:
    # Imported here so `--help` and argument errors answer without loading matplotlib and torch.
    if args.command == "rpr":
        from robustlab.plotting.rpr import plot_run

        return plot_run(args.run, args.out)
    if args.command == "linear":
        from robustlab.plotting.linear import plot_linear

        return plot_linear(args.multirun, args.out)
    if args.command == "dcgan":
        from robustlab.plotting.dcgan import plot_dcgan, plot_dcgan_multirun

        return plot_dcgan(args.run, args.out, args.prefix) if args.run else plot_dcgan_multirun(args.multirun, args.out)
    if args.command == "gan-augment":
        from robustlab.plotting.dcgan import plot_gan_augment

        return plot_gan_augment(args.run, args.out)
    if args.command == "operating-point":
        from robustlab.plotting.operating_point import plot_operating_point

        return plot_operating_point(args.multirun, args.out, log_x=args.log_x)
    if args.command in ("inherent", "rpr-vs-exact"):
        from robustlab.plotting.inherent import plot_inherent, plot_rpr_vs_exact

        return (plot_inherent if args.command == "inherent" else plot_rpr_vs_exact)(args.run, args.out)
    if args.command == "corruptions":
        from robustlab.plotting.corruptions import plot_corruptions

        return plot_corruptions(args.multirun, args.out, args.name)
    from robustlab.plotting.sweep import plot_sweep

    return plot_sweep(args.multirun, args.out, args.name)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    with one_line_errors():
        written = run(args)
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
