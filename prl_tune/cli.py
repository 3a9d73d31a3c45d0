"""The ``prl-tune`` command line."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from prl_tune._imports import import_ray_tune
from prl_tune._version import __version__
from prl_tune.config import DEFAULT_STORAGE, SpecError, StudySpec, load_spec, parse_override
from prl_tune.report import FORMATS

EXIT_BAD_INPUT = 2
#: Worker processes died more often than ``[study] worker_restarts`` allows (study unfinished).
EXIT_WORKERS_FAILED = 3
EXIT_INTERRUPTED = 130


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 but got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 but got {value}")
    return value


def _add_ray_options(tune: argparse.ArgumentParser) -> None:
    ray = tune.add_argument_group("Ray backend (override the [ray] section)")
    ray.add_argument(
        "--address", help="join this Ray cluster (HOST:PORT or auto; default RAY_ADDRESS or local)"
    )
    ray.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (fractions allowed)")
    ray.add_argument("--gpus-per-trial", type=float, help="GPUs per trial (0.25: 4 per card)")
    ray.add_argument("--max-concurrent", type=_positive_int, help="most trials running at once")
    ray.add_argument(
        "--max-failures", type=int, help="restarts of a trial whose worker died (from checkpoint)"
    )
    ray.add_argument(
        "--verbose", action="store_true", help="let Ray print its own banners, tables and warnings"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prl-tune",
        description="Tune the probabilistic LR scheduler (PLRS) with Optuna or Ray Tune.",
    )
    parser.add_argument("--version", action="version", version=f"prl-tune {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tune = commands.add_parser(
        "tune",
        help="run or resume the study a TOML file describes",
        description="Run (or resume) a study until it holds n_trials trials.",
    )
    tune.add_argument("study_file", metavar="STUDY.toml", help="the study file")
    tune.add_argument("--storage", help="storage URL (overrides [study] storage)")
    tune.add_argument(
        "--n-trials", type=_positive_int, help="the study's total trial budget (overrides file)"
    )
    tune.add_argument("--workers", type=_positive_int, help="worker processes sharing the storage")
    tune.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one field of the study file (TOML value), e.g. --set task.epochs=2",
    )
    tune.add_argument("--quiet", action="store_true", help="print only the final summary")
    tune.add_argument(
        "--backend",
        choices=("optuna", "ray"),
        help="run trials in Optuna worker processes or on Ray Tune (overrides [study] backend)",
    )
    _add_ray_options(tune)
    _add_compare_parser(commands)

    finder = commands.add_parser(
        "range-test",
        help="run the LR range test on a study's task and record it in the store",
        description="Sweep the LR exponentially on the study's task and optimizer until the "
        "loss blows up; print the curve and the suggested lr_min/lr_max, save it as a PNG and "
        'record it on the study (a study with lr_max = "range-test" then uses it).',
    )
    finder.add_argument("study_file", metavar="STUDY.toml", help="the study file")
    finder.add_argument("--storage", help="storage URL (overrides [study] storage)")
    finder.add_argument(
        "--plot", metavar="PNG", help="where to save the curve (default: NAME-range-test.png)"
    )
    finder.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE"
    )

    _add_report_parsers(commands)
    return parser


def _add_compare_parser(commands: Any) -> None:
    compare = commands.add_parser(
        "compare",
        help="compare the study's schedulers fairly: equal tuning budgets, fresh seeds, a test "
        "split",
        description="Tune each scheduler of [space] schedulers in a study of its own (same "
        "budget, sampler and seed, its own pruner), re-train each one's best configuration with "
        "fresh seeds, score it on a test split no selection saw, and print the table "
        "([comparison] in the study file). Re-running it resumes.",
    )
    compare.add_argument("study_file", metavar="STUDY.toml", help="the study file")
    compare.add_argument("--storage", help="storage URL (overrides [study] storage)")
    compare.add_argument("--out", metavar="FILE", help="also write the table as Markdown")
    compare.add_argument(
        "--seeds", type=_positive_int, help="evaluation seeds (overrides [comparison] seeds)"
    )
    compare.add_argument(
        "--studies",
        type=_positive_int,
        help="independent tuning studies per scheduler (overrides [comparison] studies)",
    )
    compare.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one field of the study file (TOML value), e.g. --set comparison.trials=4",
    )
    compare.add_argument("--quiet", action="store_true", help="print only the table")


def _add_report_parsers(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        help="turn a stored study into a report (HTML, Markdown or text)",
        description="Read a study from the store (never writing to it) and write its report: "
        "one self-contained HTML page, Markdown with PNGs beside it, or text.",
    )
    _add_report_options(report)
    report.add_argument("--out", metavar="FILE", help="where to write it (default: print text)")
    report.add_argument(
        "--format", choices=FORMATS, help="html, md or text (default: from --out's extension)"
    )
    report.add_argument(
        "--dashboard-note",
        action="store_true",
        help="also save the report's tables as the study's note in optuna-dashboard (the one "
        "write to the store; needs the dashboard extra)",
    )
    summary = commands.add_parser("summary", help="print a stored study's report as text")
    _add_report_options(summary)


def _add_report_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--storage", default=DEFAULT_STORAGE, help=f"storage URL (default {DEFAULT_STORAGE})"
    )
    command.add_argument("--study", help="study name (default: the store's only study)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``prl-tune``; returns the exit code (2 for bad input)."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _command(args)
    except SpecError as exc:
        print(f"prl-tune: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(
            "prl-tune: interrupted; the trials that were running are marked FAIL and re-run "
            "when the same command is run again.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


def _command(args: argparse.Namespace) -> int:
    if args.command == "tune":
        return _tune(args)
    if args.command == "range-test":
        return _range_test(args)
    if args.command == "compare":
        return _compare(args)
    return _report(args)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """prl_tune's own warnings as one ``prl-tune: warning:`` line; others as Python shows them."""
    from prl_tune.store import LocalBudgetWarning, NetworkFilesystemWarning

    if issubclass(category, (LocalBudgetWarning, NetworkFilesystemWarning)):
        print(f"prl-tune: warning: {message}", file=file or sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning
_RAY_OPTIONS = ("address", "cpus_per_trial", "gpus_per_trial", "max_concurrent", "max_failures")


def _tune(args: argparse.Namespace) -> int:
    overrides = dict(parse_override(text) for text in args.overrides)
    if args.backend is not None:
        overrides["study.backend"] = args.backend
    for option in _RAY_OPTIONS:
        if getattr(args, option) is not None:
            overrides[f"ray.{option}"] = getattr(args, option)
    spec = load_spec(args.study_file, overrides=overrides)
    from prl_tune.report import format_summary
    from prl_tune.store import check_storage_url

    # An unusable store (unreachable, refused, no driver, grpc://) fails in one line before a
    # backend starts or anything is written.
    check_storage_url(args.storage or spec.storage)
    stream = None if args.quiet else sys.stderr
    if spec.comparison is not None and stream is not None:
        print(
            "note: [comparison] is read by prl-tune compare; tune runs the file as one study",
            file=stream,
        )
    if spec.study.backend == "ray":
        try:
            import_ray_tune()
        except ImportError as exc:
            raise SpecError(f"--backend ray: Ray Tune is missing. {exc}") from None
        from prl_tune.hosts.ray import run_study_ray

        study = run_study_ray(
            spec, n_trials=args.n_trials, storage=args.storage, stream=stream, verbose=args.verbose
        )
    else:
        from prl_tune.hosts.optuna import WorkersFailed, run_study

        try:
            study = run_study(
                spec,
                n_trials=args.n_trials,
                workers=args.workers,
                storage=args.storage,
                stream=stream,
            )
        except WorkersFailed as exc:
            print(f"prl-tune: error: {exc}", file=sys.stderr)
            return EXIT_WORKERS_FAILED
    if args.quiet:
        print(format_summary(study))
    _report_when_done(spec, study, args.storage or spec.storage)
    return 0


def _report_when_done(spec: StudySpec, study: Any, storage: str) -> None:
    """Write ``[study] report`` if the study file asks for it, else say how to get a report."""
    from prl_tune.report import write_report
    from prl_tune.store import redact

    if spec.study.report is not None:
        print(f"report written to {write_report(study, spec.study.report)}", file=sys.stderr)
        return
    print(
        f"report: prl-tune report --storage '{redact(storage)}' --study '{spec.name}' "
        f"--out {spec.name}-report.html",
        file=sys.stderr,
    )


def _compare(args: argparse.Namespace) -> int:
    overrides = dict(parse_override(text) for text in args.overrides)
    for option in ("seeds", "studies"):
        if getattr(args, option) is not None:
            overrides[f"comparison.{option}"] = getattr(args, option)
    if args.storage is not None:
        overrides["study.storage"] = args.storage
    spec = load_spec(args.study_file, overrides=overrides)
    if args.out is not None and not Path(args.out).resolve().parent.is_dir():
        raise SpecError(f"--out: folder {str(Path(args.out).resolve().parent)!r} does not exist.")
    from prl_tune.compare import comparison_markdown, format_comparison, run_comparison
    from prl_tune.hosts.optuna import WorkersFailed

    try:
        table = run_comparison(spec, stream=None if args.quiet else sys.stderr)
    except WorkersFailed as exc:
        print(f"prl-tune: error: {exc}", file=sys.stderr)
        return EXIT_WORKERS_FAILED
    print(format_comparison(table))
    if args.out is not None:
        Path(args.out).write_text(comparison_markdown(table), encoding="utf-8")
        print(f"table written to {args.out}", file=sys.stderr)
    from prl_tune.store import redact

    print(
        f"report: prl-tune report --storage '{redact(spec.storage)}' --study '{spec.name}' "
        f"--out {spec.name}-comparison.html",
        file=sys.stderr,
    )
    return 0


def _range_test(args: argparse.Namespace) -> int:
    overrides = dict(parse_override(text) for text in args.overrides)
    if args.storage is not None:
        overrides["study.storage"] = args.storage
    spec = load_spec(args.study_file, overrides=overrides)
    from prl_tune.config import run_range_test
    from prl_tune.report import format_range_test
    from prl_tune.store import check_storage_url, create_or_resume, record_range_test, redact

    check_storage_url(spec.storage)  # a bad store fails before the test runs, not after
    print(f"running the LR range test on {spec.task.name!r} ...", file=sys.stderr)
    result = run_range_test(spec)
    study = create_or_resume(spec)
    record_range_test(study, spec, result)
    plot = result.plot(args.plot or f"{spec.name}-range-test.png")
    print(format_range_test(result))
    print(f"curve saved to {plot}; recorded on study {spec.name!r} in {redact(spec.storage)}")
    return 0


def _report(args: argparse.Namespace) -> int:
    """``report`` and ``summary`` (its text form): read-only on the store."""
    import optuna

    from prl_tune.report import format_for, write_report
    from prl_tune.store import open_for_reading, redact

    out = getattr(args, "out", None)
    kind = format_for(out, getattr(args, "format", None))
    if kind == "md" and out is None:
        raise SpecError("--out: the Markdown report needs a file (its PNGs go beside it).")
    if out is not None and not Path(out).resolve().parent.is_dir():
        raise SpecError(f"--out: folder {str(Path(out).resolve().parent)!r} does not exist.")
    storage = open_for_reading(args.storage)
    names = optuna.get_all_study_names(storage)
    name = _study_to_report(names, args.study)
    if name is None:
        if args.study is not None:
            raise SpecError(f"--study: no study named {args.study!r} in {redact(args.storage)!r}.")
        listed = ", ".join(repr(n) for n in names) or "none"
        raise SpecError(
            f"--study: must name one of the {len(names)} studies in "
            f"{redact(args.storage)!r} ({listed})."
        )
    study = optuna.load_study(study_name=name, storage=storage)
    written = write_report(study, out, format=kind)
    print(written if out is None else f"report written to {written}")
    if getattr(args, "dashboard_note", False):
        _save_dashboard_note(args.storage, name)
    return 0


def _study_to_report(names: list[str], requested: str | None) -> str | None:
    """The study ``report`` shows: ``requested``, or for the name of a comparison its evaluation
    study (``NAME/evaluation``, which holds the table); without ``--study`` the store's only
    study, or the evaluation study when the store holds one comparison's studies only."""
    if requested is not None:
        if requested in names:
            return requested
        evaluation = f"{requested}/evaluation"
        return evaluation if evaluation in names else None
    if len(names) == 1:
        return names[0]
    evaluations = [n for n in names if n.endswith("/evaluation")]
    if len(evaluations) == 1:
        prefix = evaluations[0].removesuffix("evaluation")
        if all(n.startswith(prefix) for n in names):
            return evaluations[0]
    return None


def _save_dashboard_note(storage: str, name: str) -> None:
    """Write the report's tables as the study's optuna-dashboard note (asked for explicitly)."""
    import optuna

    from prl_tune.report import build_report, note_markdown
    from prl_tune.store import open_storage

    try:
        from optuna_dashboard import save_note
    except ImportError as exc:
        raise SpecError(
            f"--dashboard-note: needs optuna-dashboard ({exc}); install it with: "
            "pip install 'prl_tune[dashboard]'"
        ) from None
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    save_note(study, note_markdown(build_report(study)))
    print(f"note saved on study {name!r} for optuna-dashboard", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
