"""The Ray host's runner: a study file's trials on a Ray cluster, recorded in the study's store.

The driver (this process) holds the Optuna study: its sampler proposes every trial through
:class:`StudySearcher`, :class:`InstabilityScheduler` applies the memory and the base scheduler,
and only the driver writes to the store. Trials run :func:`study_trainable` on the cluster's
workers and never open the database.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import optuna
import ray
from optuna.trial import TrialState
from ray import tune

from prl_tune.config import SpecError, StudySpec
from prl_tune.hosts._shared import resolve_space, warm_start, with_overrides
from prl_tune.hosts.ray._scheduler import UNSTABLE_KEY, InstabilityScheduler
from prl_tune.hosts.ray._searcher import StudySearcher
from prl_tune.hosts.ray._trainable import PROGRESS_FILE, VALUE_KEY, params_key, study_trainable
from prl_tune.report import Progress, format_summary
from prl_tune.space import SchedulerSpace
from prl_tune.stability import EVIDENCE_KEY, UnstableRangeMemory
from prl_tune.store import (
    Heartbeat,
    claim,
    counted_trials,
    create_or_resume,
    fail_orphans,
    json_float,
    make_sampler,
    open_storage,
    range_record,
    stored_spec,
    study_records,
    teach,
)
from prl_tune.training import EpochMetrics

_EPOCH_KEYS = tuple(EpochMetrics.__dataclass_fields__)
#: On a trial: the folder (path or URI) of its Ray checkpoints.
CHECKPOINT_ATTR = "ray_checkpoints"
#: On a trial resumed from another's checkpoint: that trial's number.
RESUMED_ATTR = "resumed_from"
_CONNECT_TIMEOUT_S = 5.0
# Ray's loggers that print banners and warnings; quiet unless --verbose.
_RAY_LOGGERS = ("ray", "ray.tune", "ray.air", "ray.train", "ray.data")


@dataclass(frozen=True)
class RayRun:
    """Where a Ray run's files went: the experiment folder (trial results and checkpoints) and
    Ray's session logs."""

    experiment: str
    logs: str


def run_study_ray(
    spec: StudySpec,
    *,
    n_trials: int | None = None,
    storage: str | None = None,
    stream: IO[str] | None = sys.stderr,
    verbose: bool = False,
) -> optuna.Study:
    """Run (or resume) the study on Ray Tune until the store holds ``n_trials`` trials.

    The same budget rule as the Optuna backend: the store says what is done, so re-running
    resumes, and a study started on either backend can be continued on the other. Ray is
    joined at ``[ray] address`` (or ``RAY_ADDRESS``), else started locally; the cluster and the
    resources per trial are checked before anything is written to the store.

    Args:
        spec: the parsed study (its ``[ray]`` section: address, resources, concurrency).
        n_trials: override of ``[study] n_trials``.
        storage: override of ``[study] storage``.
        stream: where progress and the summary go (``None``: silent).
        verbose: let Ray print its own banners, tables and warnings.

    Raises:
        SpecError: Ray is missing, the cluster is unreachable, or a trial's resources do not
            fit on any of its nodes (nothing is written to the store).
    """
    spec = with_overrides(spec, n_trials=n_trials, storage=storage)
    with _ray_session(ray, spec, verbose) as logs:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        opened = open_storage(spec.storage)
        study = create_or_resume(spec, opened)
        fail_orphans(study)
        resumable = _resumable(study)
        spec = resolve_space(study, spec, stream)
        spec = warm_start(study, spec, stream)
        concurrency = _concurrency(ray, spec)
        done = len(study.get_trials(deepcopy=False))
        study = optuna.load_study(
            study_name=spec.name,
            storage=opened,
            sampler=make_sampler(spec, concurrent=concurrency > 1, done=done),
        )
        progress = Progress(spec.n_trials, study.direction, stream=stream, workers=concurrency)
        progress.start(study)
        remaining = spec.n_trials - counted_trials(study)
        experiment = ""
        if remaining > 0:
            experiment = _tune(spec, study, opened, remaining, progress, verbose, resumable)
    if stream is not None:
        print(format_summary(study), file=stream)
        print(_where(RayRun(experiment, logs)), file=stream)
    return study


def _where(run: RayRun) -> str:
    lines = []
    if run.experiment:
        lines.append(f"Ray trial folders and checkpoints: {run.experiment}")
    lines.append(f"Ray logs: {run.logs}")
    return "\n".join(lines)


@contextlib.contextmanager
def _ray_session(ray: Any, spec: StudySpec, verbose: bool) -> Iterator[str]:
    """Join (or start) Ray, check the trial's resources against it; yields Ray's log folder.

    Ray is shut down afterwards when this call started or joined it.
    """
    address = spec.ray.address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        _check_reachable(address)
        _use_auth_token()
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # Ctrl-C ends the run here
    # A diverged trial's last result says why it stopped and has no metric.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1")
    started = not ray.is_initialized()
    if started:
        try:
            with _quiet(not verbose):
                ray.init(
                    address=address,
                    include_dashboard=False,
                    log_to_driver=verbose,
                    logging_level=logging.INFO if verbose else logging.ERROR,
                    configure_logging=True,
                    runtime_env=_runtime_env(),
                )
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            raise SpecError(
                f"--address: cannot join a Ray cluster at {address!r}: {_first_line(exc)}"
            ) from None
    if not verbose:  # after ray.init, which sets up its loggers
        for name in _RAY_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        _check_resources(ray, spec)
        yield _log_folder(ray)
    finally:
        if started:
            ray.shutdown()


def _check_reachable(address: str) -> None:
    """Refuse at once an address whose host:port does not answer (Ray would retry a minute)."""
    if address == "auto" or address.startswith("local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise SpecError(f"--address: must be 'auto' or HOST:PORT but got {address!r}.")
    try:
        with socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise SpecError(
            f"--address: no Ray cluster answers at {address!r} ({exc.strerror or exc}); start "
            "one with `ray start --head` or fix the address."
        ) from None


def _use_auth_token() -> None:
    """Join a cluster with token authentication (Ray's default for ``ray start``) when this
    machine has a token and ``RAY_AUTH_MODE`` is not set; Ray's driver does not by itself."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    token_file = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or os.path.isfile(token_file):
        os.environ["RAY_AUTH_MODE"] = "token"
        try:  # Ray read its config when it was imported; re-read it as Ray itself does
            from ray._raylet import Config  # type: ignore[attr-defined]

            Config.initialize("")
        except (ImportError, AttributeError):  # pragma: no cover - another Ray version
            pass


def _runtime_env() -> dict[str, Any]:
    """Workers import what the driver imports: its working folder and ``PYTHONPATH``."""
    paths = [os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}}


def _check_resources(ray: Any, spec: StudySpec) -> None:
    """A trial's CPUs and GPUs must fit on one alive node."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    cpus, gpus = spec.ray.cpus_per_trial, spec.ray.gpus_per_trial
    most_gpus = max((float(n.get("GPU", 0.0)) for n in nodes), default=0.0)
    if gpus > 0 and most_gpus == 0:
        raise SpecError(
            f"[ray] gpus_per_trial: must be 0 on a cluster without GPUs but got {gpus:g}."
        )
    fits = [
        n for n in nodes if float(n.get("CPU", 0.0)) >= cpus and float(n.get("GPU", 0.0)) >= gpus
    ]
    if not fits:
        most_cpus = max((float(n.get("CPU", 0.0)) for n in nodes), default=0.0)
        raise SpecError(
            f"[ray] cpus_per_trial: a trial must fit on one node (the largest has {most_cpus:g} "
            f"CPUs and {most_gpus:g} GPUs) but got {cpus:g} CPUs with {gpus:g} GPUs."
        )


def _concurrency(ray: Any, spec: StudySpec) -> int:
    """How many trials can run at once: ``max_concurrent``, or as many as the cluster fits."""
    if spec.ray.max_concurrent is not None:
        return spec.ray.max_concurrent
    total = ray.cluster_resources()
    fit = int(float(total.get("CPU", 1.0)) // spec.ray.cpus_per_trial)
    if spec.ray.gpus_per_trial > 0:
        fit = min(fit, int(float(total.get("GPU", 0.0)) // spec.ray.gpus_per_trial))
    return max(1, fit)


def _log_folder(ray: Any) -> str:
    """Ray's log folder of this session (on the head node)."""
    context = ray.get_runtime_context()
    return os.path.join(context.get_temp_dir(), context.get_session_name(), "logs")


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


@contextlib.contextmanager
def _quiet(active: bool) -> Iterator[None]:
    """Silence Ray's start-up banner and warnings (they go to this process's stdout/stderr)."""
    if not active:
        yield
        return
    with open(os.devnull, "w") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield


def _tune(
    spec: StudySpec,
    study: optuna.Study,
    storage: optuna.storages.RDBStorage,
    remaining: int,
    progress: Progress,
    verbose: bool,
    resumable: list[_Resume],
) -> str:
    """Run ``remaining`` trials with Ray Tune, the ``resumable`` ones first, each from its
    checkpoint; returns the experiment folder."""

    assert isinstance(spec.space, SchedulerSpace)
    scheduler = InstabilityScheduler(
        _base_scheduler(spec), space=spec.space, rules=spec.rules, memory=spec.pruning.memory
    )
    with Heartbeat(storage) as heartbeat:
        resumable = resumable[:remaining]
        searcher = _SpecSearcher(spec, study, scheduler, progress, heartbeat, resumable)
        resumes = {params_key(r.origin.params): r.checkpoint for r in resumable}
        # The trial needs no storage URL: Ray keeps its arguments, so none with a password.
        run = tune.with_parameters(
            study_trainable, spec_data=stored_spec(spec), source=spec.source, resumes=resumes
        )
        trainable = tune.with_resources(
            run,
            {"cpu": spec.ray.cpus_per_trial, "gpu": spec.ray.gpus_per_trial},
        )
        mode = "max" if spec.direction == "maximize" else "min"
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                metric=spec.metric,
                mode=mode,
                num_samples=remaining,
                max_concurrent_trials=spec.ray.max_concurrent,
                reuse_actors=spec.ray.reuse_actors,
            ),
            run_config=tune.RunConfig(
                name=f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=spec.ray.storage_path,
                verbose=2 if verbose else 0,
                failure_config=tune.FailureConfig(max_failures=spec.ray.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                callbacks=[_CheckpointRecorder(searcher)],
            ),
        )
        try:
            with _quiet(not verbose):
                grid = tuner.fit()
        finally:
            searcher.abandon_open_trials("the driver stopped before the trial ended")
            progress.update(study)
    return str(grid.experiment_path)


def _resumable(study: optuna.Study) -> list[_Resume]:
    """Trials a dead or interrupted driver left behind with a checkpoint, not yet resumed: they
    continue from it (same parameters) before new trials are proposed."""
    trials = study.get_trials(deepcopy=False)
    resumed = {t.user_attrs.get(RESUMED_ATTR) for t in trials}
    found = []
    for trial in trials:
        folder = trial.user_attrs.get(CHECKPOINT_ATTR)
        if (
            trial.state != TrialState.FAIL
            or "error" in trial.user_attrs
            or not isinstance(folder, str)
            or trial.number in resumed
        ):
            continue
        latest = _latest_checkpoint(folder)
        if latest is not None:
            found.append(_Resume(trial, *latest))
    return found


@dataclass(frozen=True)
class _Resume:
    """A trial to continue: the dead one, its latest checkpoint and what that holds."""

    origin: optuna.trial.FrozenTrial
    checkpoint: str
    epoch: int
    history: list[dict[str, Any]]


def _latest_checkpoint(folder: str) -> tuple[str, int, list[dict[str, Any]]] | None:
    """The newest complete checkpoint in a trial's folder (a path or URI): its URI, the epoch
    it holds and the history up to it; ``None`` if there is none (or the folder is gone)."""
    import pyarrow.fs

    try:
        filesystem, path = pyarrow.fs.FileSystem.from_uri(folder)
        entries = filesystem.get_file_info(pyarrow.fs.FileSelector(path))
    except (OSError, ValueError):
        return None
    names = sorted(e.base_name for e in entries if e.base_name.startswith("checkpoint_"))
    for name in reversed(names):
        try:
            with filesystem.open_input_stream(f"{path}/{name}/{PROGRESS_FILE}") as stream:
                progress = json.loads(stream.read())
        except (OSError, ValueError):
            continue  # a checkpoint being written when the driver died
        uri = f"{folder.rstrip('/')}/{name}"
        return uri, int(progress["epoch"]), list(progress["history"])
    return None


class _CheckpointRecorder(tune.Callback):
    """Records where each trial's checkpoints go on its Optuna trial (once), so a later run can
    resume the trial if this driver dies."""

    def __init__(self, searcher: _SpecSearcher) -> None:
        self.searcher = searcher

    def on_checkpoint(
        self, iteration: int, trials: list[Any], trial: Any, checkpoint: Any, **info: Any
    ) -> None:
        name = checkpoint.filesystem.type_name
        folder = os.path.dirname(str(checkpoint.path).rstrip("/"))
        self.searcher.record_checkpoints(
            trial.trial_id, folder if name == "local" else f"{name}://{folder}"
        )


def _base_scheduler(spec: StudySpec) -> Any:
    """``[pruning] base`` as a Ray scheduler (``median`` is Ray's ``MedianStoppingRule``)."""
    from ray.tune import schedulers

    settings = spec.pruning
    epochs = spec.task.epochs
    if settings.base == "asha":
        return schedulers.ASHAScheduler(
            time_attr="training_iteration",
            max_t=epochs,
            grace_period=min(settings.min_resource, epochs),
            reduction_factor=settings.reduction_factor,
        )
    if settings.base == "hyperband":
        return schedulers.HyperBandScheduler(
            time_attr="training_iteration", max_t=epochs, reduction_factor=settings.reduction_factor
        )
    if settings.base == "median":
        return schedulers.MedianStoppingRule(
            time_attr="training_iteration",
            grace_period=settings.n_warmup_steps,
            min_samples_required=max(1, settings.n_startup_trials),
        )
    return schedulers.FIFOScheduler()


class _SpecSearcher(StudySearcher):
    """``StudySearcher`` plus what a study file's trials record on the Optuna backend too:
    the round-robin scheduler allocation, the owner and heartbeats, ``seed``, ``history``,
    ``steps``, the loss range and the tails of a diverged run; a progress line per trial."""

    def __init__(
        self,
        spec: StudySpec,
        study: optuna.Study,
        scheduler: InstabilityScheduler,
        progress: Progress | None,
        heartbeat: Heartbeat | None,
        resumable: list[_Resume] | None = None,
    ) -> None:
        assert isinstance(spec.space, SchedulerSpace)
        super().__init__(
            study,
            spec.space,
            metric=spec.metric,
            max_iterations=spec.task.epochs,
            scheduler=scheduler,
            iteration_key="epoch",  # a resumed trial's first result is not its first epoch
            value_key=VALUE_KEY,
        )
        self._resumable = list(resumable or [])
        self._folders: set[str] = set()
        self.spec = spec
        self.progress = progress
        self.heartbeat = heartbeat
        self._ids: dict[str, int] = {}
        self._history: dict[str, list[dict[str, Any]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles the searcher with the experiment's state; the heartbeat thread and the
        # terminal belong to this driver only.
        state = dict(self.__dict__)
        state["progress"] = state["heartbeat"] = None
        return state

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        resume = self._resumable.pop(0) if self._resumable else None
        schedulers = self.spec.schedulers
        if resume is not None:
            self.study.enqueue_trial(dict(resume.origin.params), skip_if_exists=False)
        elif len(schedulers) > 1 and self.spec.allocation == "equal":
            used = counted_trials(self.study)
            self.study.enqueue_trial({"scheduler": schedulers[used % len(schedulers)]})
        config = super().suggest(trial_id)
        trial = self._trials[trial_id]
        claim(trial)
        trial.set_user_attr("seed", self.spec.seed)
        trial.set_user_attr("backend", "ray")
        self._ids[trial_id] = trial._trial_id
        if self.heartbeat is not None:
            self.heartbeat.add(trial._trial_id)
        self._history[trial_id] = []
        if resume is not None:
            self._continue(trial_id, trial, resume)
        if config is not None:
            config[EVIDENCE_KEY] = self._known_to_learn(trial)
        return config

    def _known_to_learn(self, trial: optuna.Trial) -> bool:
        """The dead rule's evidence for a new trial, from the study's finished trials."""
        own = range_record(trial)
        if own is None:
            return False
        records = study_records(self.study, exclude=trial.number)
        memory = UnstableRangeMemory("dominance", records)
        return memory.known_to_learn(
            own.lr_min, own.lr_max, own.context, within=self.spec.rules.dead_window
        )

    def _continue(self, trial_id: str, trial: optuna.Trial, resume: _Resume) -> None:
        """Start a resumed trial with what its origin recorded up to its checkpoint."""
        trial.set_user_attr(RESUMED_ATTR, resume.origin.number)
        self._history[trial_id] = [h for h in resume.history if h["epoch"] <= resume.epoch]
        for step, value in sorted(resume.origin.intermediate_values.items()):
            if step <= resume.epoch:
                trial.report(value, step)
                self._reported[trial_id].add(step)

    def record_checkpoints(self, trial_id: str, folder: str) -> None:
        """Note, once, the folder of a trial's checkpoints on its Optuna trial."""
        trial = self._trials.get(trial_id)
        if trial is not None and trial_id not in self._folders:
            trial.set_user_attr(CHECKPOINT_ATTR, folder)
            self._folders.add(trial_id)

    def _report(self, trial_id: str, trial: optuna.Trial, result: Mapping[str, Any]) -> None:
        super()._report(trial_id, trial, result)
        if isinstance(result.get("epoch"), int) and all(k in result for k in _EPOCH_KEYS):
            history = self._history.setdefault(trial_id, [])
            if not history or history[-1]["epoch"] < result["epoch"]:
                history.append({k: json_float(float(result[k])) for k in _EPOCH_KEYS})

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        trial = self._trials.get(trial_id)
        if trial is not None:
            self._record_run(trial_id, trial, result or {})
        super().on_trial_complete(trial_id, result, error)
        self._forget(trial_id)
        if self.progress is not None:
            self.progress.update(self.study)

    def _record_run(self, trial_id: str, trial: optuna.Trial, result: Mapping[str, Any]) -> None:
        """The run's history and totals, from its results (written once, not every epoch; a
        checkpoint holds the history too)."""
        if self._history.get(trial_id):
            trial.set_user_attr("history", self._history[trial_id])
        stop = self.scheduler.stopped.get(trial_id) if self.scheduler is not None else None
        if stop is not None and stop.pruned_by == "memory":
            trial.set_user_attr("steps", 0)
            return
        for key in ("steps", "initial_loss", "peak_loss", "learned_at", "chance_loss"):
            if isinstance(result.get(key), int | float):
                value = result[key]
                exact = key in ("steps", "learned_at")
                trial.set_user_attr(key, value if exact else json_float(value))
        for key in ("loss_tail", "lr_tail"):
            if isinstance(result.get(key), list):
                trial.set_user_attr(key, result[key])
        if stop is None and not result.get(UNSTABLE_KEY) and self._history.get(trial_id):
            # Completed, or stopped by the base scheduler: what its history teaches.
            records = study_records(self.study, exclude=trial.number)
            teach(trial, self._history[trial_id], result, self.spec.rules, records)

    def abandon_open_trials(self, reason: str) -> None:
        """Fail the trials Ray did not finish (the driver stopped); they are re-run on resume."""
        for trial_id, trial in list(self._trials.items()):
            trial.set_user_attr("fail_reason", reason)
            with contextlib.suppress(ValueError):  # already ended
                self.study.tell(trial, state=TrialState.FAIL)
            del self._trials[trial_id]
            self._forget(trial_id)

    def _forget(self, trial_id: str) -> None:
        number = self._ids.pop(trial_id, None)
        if number is not None and self.heartbeat is not None:
            self.heartbeat.discard(number)
        self._history.pop(trial_id, None)
