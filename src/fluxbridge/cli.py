"""The ``fluxbridge`` command line: each subcommand is a thin call of a public library function.

Errors in the input print one line and exit with status 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fluxbridge import __version__
from fluxbridge.errors import FluxbridgeError
from fluxbridge.progress import configure_logging

if TYPE_CHECKING:
    from fluxbridge.config import ExperimentConfig

EXIT_BAD_INPUT = 2
DATA_DIR_HELP = ("data folder in place of the experiment's data_dir (the inputs it names as "
                 "{data_dir})")

DESCRIPTION = """\
fluxbridge estimates the land's net ecosystem exchange of CO2 (NEE, gC m-2 d-1, positive = source
to the atmosphere) with machine learning trained on eddy-covariance towers, optionally constrained
by atmospheric inversions through a sparse regional observation operator.

Typical session:
  fluxbridge synth --out world            # write the twin world (synthetic Earth, real formats)
  fluxbridge inspect world/sites/FLX_...  # what is this file, can fluxbridge use it?
  fluxbridge init experiment.yaml         # commented template of an experiment
  fluxbridge validate experiment.yaml     # every input checked, every problem listed
  fluxbridge run experiment.yaml          # train, upscale, evaluate, report
  fluxbridge demo --out runs/demo         # the twin-world experiment, small (about 6 minutes)
"""


def _cmd_synth(args: argparse.Namespace) -> int:
    from fluxbridge.synthetic import synthesize

    manifest = synthesize(args.out, config=args.config, seed=args.seed,
                          overwrite=args.overwrite, progress=not args.quiet)
    print(f"twin world written: {manifest}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from fluxbridge.io.inspect import inspect_file

    status = 0
    for path in args.files:
        report = inspect_file(path)
        if report.usable:
            print(report.to_text())
        else:
            print(f"fluxbridge: {report.reason}", file=sys.stderr)
            status = EXIT_BAD_INPUT
    return status


def _cmd_init(args: argparse.Namespace) -> int:
    from fluxbridge.config import write_template

    path = write_template(args.file, overwrite=args.overwrite)
    print(f"experiment template written: {path}\nrun it with: fluxbridge run {path}")
    return 0


def _experiment(args: argparse.Namespace) -> Path | ExperimentConfig:
    """The experiment file, or its configuration with ``--data-dir`` in place of its own."""
    if getattr(args, "data_dir", None) is None:
        return args.config
    from fluxbridge.config import load_config

    return load_config(args.config, data_dir=args.data_dir)


def _cmd_validate(args: argparse.Namespace) -> int:
    from fluxbridge.validate import validate_experiment

    problems = validate_experiment(_experiment(args))
    for line in problems:
        print(f"fluxbridge: {line}", file=sys.stderr)
    if problems:
        return EXIT_BAD_INPUT
    print(f"{args.config}: every input and the scheduler checked; no problem found")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from fluxbridge.pipeline import run_experiment

    result = run_experiment(_experiment(args), overwrite=args.overwrite,
                            progress=not args.quiet)
    print(result.summary())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from fluxbridge.demo import run_demo

    result = run_demo(args.out, overwrite=args.overwrite, progress=not args.quiet)
    print(result.summary())
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from fluxbridge.pipeline import train_step

    path = train_step(_experiment(args), overwrite=args.overwrite, progress=not args.quiet)
    print(f"models written: {path}")
    return 0


def _cmd_upscale(args: argparse.Namespace) -> int:
    from fluxbridge.pipeline import upscale_step

    path = upscale_step(args.config, scheduler=args.scheduler, overwrite=args.overwrite,
                        progress=not args.quiet)
    print(f"gridded NEE written: {path}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from fluxbridge.pipeline import evaluate_step

    path = evaluate_step(_experiment(args), overwrite=args.overwrite)
    print(f"report written: {path}")
    return 0


def _cmd_sitecv(args: argparse.Namespace) -> int:
    from fluxbridge.studies.sitecv import run_sitecv

    result = run_sitecv(args.data, metadata=args.metadata, out=args.out, folds=args.folds,
                        seed=args.seed, overwrite=args.overwrite, progress=not args.quiet)
    print(result.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fluxbridge`` command."""
    parser = argparse.ArgumentParser(
        prog="fluxbridge", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fluxbridge {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="debug log (the estimator's diagnostics) and tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress, warnings only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str,
            description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=description,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    _data_commands(add)
    _experiment_commands(add)
    return parser


Adder = Callable[[str, Callable[[argparse.Namespace], int], str, str], argparse.ArgumentParser]


def _data_commands(add: Adder) -> None:
    """``synth``, ``inspect``, ``init``, ``sitecv``: commands on files."""
    p = add("synth", _cmd_synth, "write the twin world (a synthetic Earth in real file formats)",
            "Write a reproducible synthetic Earth with known true NEE: FLUXNET2015 site CSVs, "
            "ERA5 and MODIS NetCDF, an inversion ensemble, corrections, regions, the truth and "
            "manifest.json. The same seed gives the same files.")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--config", type=Path,
                   help="YAML world configuration (default: the standard world)")
    p.add_argument("--seed", type=int, help="random seed (overrides the configuration)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing world")

    p = add("inspect", _cmd_inspect, "tell what a data file is and whether fluxbridge can use it",
            "Identify a file (FLUXNET/ICOS/AmeriFlux site CSV or zip, site metadata, ERA5, "
            "MODIS, inversion flux, region mask as NetCDF or as GeoJSON / shapefile / GeoPackage "
            "polygons), print its resolution, variables, units, period "
            "and coverage. Exit 0 if usable, 2 with a one-line reason if not.")
    p.add_argument("files", type=Path, nargs="+", help="files to inspect")

    p = add("init", _cmd_init, "write a commented experiment template",
            "Write a commented YAML experiment file for the twin-world experiment; "
            "`fluxbridge run FILE` runs it as it is.")
    p.add_argument("file", type=Path, help="YAML file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")

    p = add("sitecv", _cmd_sitecv, "leave-site-out cross-validation on FLUXNET files",
            "Grouped k-fold cross-validation by site on FLUXNET2015 MM or DD files: the network "
            "against random forest and XGBoost on identical folds, scored by time scale "
            "(all, across-site, mean seasonal cycle, anomalies) and by IGBP class.")
    p.add_argument("data", type=Path, help="directory of FLUXNET CSV files (MM or DD)")
    p.add_argument("--metadata", type=Path, required=True, nargs="+",
                   help="site metadata tables (BIF CSV/XLSX, site list); a site takes its row "
                        "from the first table that has it")
    p.add_argument("--out", type=Path, default=Path("runs/sitecv"), help="output directory")
    p.add_argument("--folds", type=int, default=10, help="number of site folds")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def _experiment_commands(add: Adder) -> None:
    """``run``, ``train``, ``evaluate``, ``upscale``, ``demo``: the steps of an experiment."""
    for name, func, help_ in [
        ("run", _cmd_run, "run every step of an experiment (train, upscale, evaluate, report)"),
        ("train", _cmd_train, "train the models of an experiment (resumes after a kill)"),
        ("evaluate", _cmd_evaluate, "evaluate upscaled models and write the report"),
    ]:
        p = add(name, func, help_, help_[0].upper() + help_[1:] + ".")
        p.add_argument("config", type=Path, help="YAML experiment file (see `fluxbridge init`)")
        p.add_argument("--overwrite", action="store_true",
                       help="replace existing outputs instead of refusing")
        p.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)

    p = add("validate", _cmd_validate, "check every input of an experiment, before any work",
            "Open and check every input of an experiment (formats, units, plausible values, "
            "gaps, grids, overlap in time, region names) and its dask scheduler address; list "
            "every problem found, one per line. Exit 0 if none, 2 otherwise. `run`, `train` "
            "and `upscale` make the same checks first.")
    p.add_argument("config", type=Path, help="YAML experiment file")
    p.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)

    p = add("upscale", _cmd_upscale, "apply trained models to the global grid on dask",
            "Predict gridded NEE chunk by chunk on a dask cluster (a LocalCluster unless "
            "--scheduler is given), write CF-1.8 NetCDF and regional/global totals. A killed run "
            "resumes from its finished chunks.")
    p.add_argument("config", type=Path, help="YAML experiment file")
    p.add_argument("--scheduler", help="address of an existing dask scheduler")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")

    p = add("demo", _cmd_demo, "run the twin-world experiment, made small (about 6 minutes)",
            "Synthesize a 3-year twin world, train site-only and dual-constraint networks, "
            "random forest and XGBoost, upscale each, withhold 4 regions' inversions in turn, "
            "evaluate against the truth and inversions, and write the report. The full "
            "experiment: `fluxbridge init FILE` then `fluxbridge run FILE`.")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run")


TRAINING_COMMANDS = frozenset({"run", "demo", "train", "upscale", "evaluate", "sitecv"})


def torch_threads() -> int:
    """Torch threads of a training command on a CPU: two at most (the networks are small;
    more threads only contend), one on a single core. Float sums depend on it, so a run and
    its resumption use the same number."""
    return max(1, min(2, os.cpu_count() or 1))


def _set_process_state(command: str) -> None:
    """Threads and seeds of the process, set here and nowhere else in the package: at most
    two torch threads on a CPU (the networks are small; more threads only contend), and the
    global generators seeded so that nothing unseeded varies between runs."""
    if command not in TRAINING_COMMANDS:
        return
    import numpy as np
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(torch_threads())
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - only libraries' unseeded global draws


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fluxbridge`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _set_process_state(args.command)
    configure_logging(logging.DEBUG if args.debug else (
        logging.WARNING if args.quiet else logging.INFO))
    try:
        return int(args.func(args) or 0)
    except FluxbridgeError as exc:
        if args.debug:
            raise
        print(f"fluxbridge: error: {exc}".replace("\n", " "), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("fluxbridge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
