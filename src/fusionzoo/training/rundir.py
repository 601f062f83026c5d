"""The run folder: the one place that knows its files and rules.

A run folder (``fit``'s ``checkpoint_dir``) holds, after every epoch, ``last.safetensors`` and
``best.safetensors`` (model checkpoints), ``state.safetensors`` (everything a resume needs, the
history included) and ``history.csv`` (the same history, for people and plots). They are written
in that order: the state is the epoch's commit point, written once the checkpoints it refers to are
complete, and ``history.csv`` is rewritten from it, so a run killed at any moment resumes from its
last state. When the run finishes, the state and ``last.safetensors`` (over two thirds of the
folder, and only needed to continue it) are deleted unless it keeps them (``keep_state``): a
folder holding ``history.csv`` but no state is a finished run, readable, not continuable.

While training, the folder is locked; whoever holds the lock sweeps the temporary files of writes
killed earlier, and only then decides whether the folder already holds a run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._files import LOCK_FILE, folder_lock, remove_stale_temporaries
from ..errors import CheckpointError
from ..weights.checkpoint import load_state, read_state_progress, save, save_state
from . import distributed
from .history import History
from .progress import Progress, Recipe, check_resume
from .recipe import RunRecipe

log = distributed.main_process_logger(__name__)

HISTORY_FILE, LAST_FILE, BEST_FILE = "history.csv", "last.safetensors", "best.safetensors"
STATE_FILE = "state.safetensors"


@dataclass(frozen=True)
class TrainingState:
    """The live objects a state file stores and a resume restores."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler


@dataclass(frozen=True)
class RunFolder:
    """A run folder at ``path``; ``resume_from``: the state file a resumed run continues from
    (``None`` for a new run), which may lie in another folder."""

    path: Path
    resume_from: Path | None = None

    @property
    def last(self) -> Path:
        return self.path / LAST_FILE

    @property
    def best(self) -> Path:
        return self.path / BEST_FILE

    @property
    def state(self) -> Path:
        return self.path / STATE_FILE

    @property
    def history(self) -> Path:
        return self.path / HISTORY_FILE

    @property
    def has_state(self) -> bool:
        """Whether the folder holds a run that can be resumed."""
        return self.state.is_file()

    @classmethod
    def choose(cls, checkpoint_dir: str | Path | None, resume: str | Path | None) -> RunFolder | None:
        """The folder ``fit`` writes (``checkpoint_dir``, else the one resumed from; ``None`` when
        neither is given) and the state it resumes from. Creates nothing; ``CheckpointError`` says
        what to do when ``resume`` names nothing resumable."""
        if resume is None:
            return None if checkpoint_dir is None else cls(Path(checkpoint_dir))
        state = _resumable_state(Path(resume))
        return cls(Path(checkpoint_dir) if checkpoint_dir is not None else state.parent, state)

    @contextlib.contextmanager
    def opened(self, writer: bool) -> Iterator[None]:
        """The block runs with the folder ready for this process: a ``writer`` holds its lock
        (``RunInUseError`` if another process does) and has swept stale temporary files; a new run
        is refused if the folder already holds one (checked under the lock, so a second process
        is told the folder is in use, not that it holds a run)."""
        with folder_lock(self.path) if writer else contextlib.nullcontext():
            if writer:
                self._remove_stale_temporaries()
            if self.resume_from is None:
                self._refuse_a_held_run()
            yield

    def load(self, state: TrainingState, recipe: Recipe) -> Progress:
        """Restore the state file ``resume_from`` (of a resumed run) into ``state``; returns its
        progress, checked field by field (``CheckpointError`` naming the file otherwise). The stored
        recipe is held to ``recipe`` (``check_resume``) before anything is restored, so a refused
        resume leaves the model, optimizer and RNG as they were."""
        path = self.resume_from
        try:
            progress = Progress.from_json(path, read_state_progress(path))
            check_resume(path, progress.recipe, recipe)
            load_state(path, state.model, state.optimizer, scheduler=state.scheduler, scaler=state.scaler)
        except KeyError as err:
            raise CheckpointError(f"{path}: an incomplete training state (no {err.args[0]!r}); it cannot be resumed") from None
        return progress

    def write_epoch(self, state: TrainingState, progress: Progress, recipe: RunRecipe | None = None) -> None:
        """Write the folder after ``progress.epoch``: checkpoints, then the state (the commit
        point), then ``history.csv``. With ``recipe``, every file carries the record of the epoch's
        weights (metrics, recipe, data contract; ``fusionzoo info FILE`` prints it)."""
        self.path.mkdir(parents=True, exist_ok=True)
        record = recipe.record_at(progress) if recipe is not None else None
        save(state.model, self.last, record=record)
        if progress.history.best_epoch == progress.epoch:
            save(state.model, self.best, record=record)
        save_state(self.state, state.model, state.optimizer, scheduler=state.scheduler, scaler=state.scaler,
                   progress=progress.to_json(), record=record)
        progress.history.to_csv(self.history)

    def repair_history(self, history: History) -> None:
        """Rewrite ``history.csv`` from ``history`` (the resumed state's, which is authoritative) if
        the state came from this folder and the file does not hold it: the run was stopped between
        writing its state and its history."""
        if self.resume_from != self.state or _read_history(self.history) == history:
            return
        log.info("%s: rewriting %s from %s (%d epochs)", self.path, HISTORY_FILE, STATE_FILE, len(history))
        history.to_csv(self.history)

    def finish(self, keep_state: bool) -> None:
        """Close a finished run: unless ``keep_state``, delete what only continuing it needs (the
        state, then ``last.safetensors``), leaving the best checkpoint with its record and the
        history. The state goes first, so a kill in between leaves a finished run, never a state
        whose checkpoint is gone."""
        if keep_state:
            return
        self.state.unlink(missing_ok=True)
        self.last.unlink(missing_ok=True)

    def finished_history(self, epochs: int) -> History | None:
        """The history of a finished run whose state was not kept, of at least ``epochs`` epochs;
        ``None`` when the folder holds a state (resume it) or no run (train it).
        ``CheckpointError`` when it holds fewer epochs, or no best checkpoint."""
        if self.has_state or not self.history.exists():
            return None
        history = History.from_csv(self.history)
        if len(history) < epochs:
            raise CheckpointError(
                f"{self.path}: holds {len(history)} of {epochs} epochs and no {STATE_FILE} to continue from; "
                "remove the folder to train it again (keep_state=True, or --keep-state, keeps what continuing a run "
                "needs), or choose another output folder"
            )
        if not self.best.is_file():
            raise CheckpointError(f"{self.path}: the finished run has no {BEST_FILE}")
        return history

    def _remove_stale_temporaries(self) -> None:
        removed = remove_stale_temporaries(self.path)
        if removed:
            log.info("%s: removed %d temporary file(s) of writes killed earlier", self.path, len(removed))

    def _refuse_a_held_run(self) -> None:
        if self.has_state:
            raise CheckpointError(
                f"{self.path}: this folder already holds a run ({STATE_FILE}); pass resume={str(self.path)!r} to continue it, "
                "or choose another checkpoint_dir"
            )
        if self.history.exists():
            raise CheckpointError(
                f"{self.path}: this folder already holds a finished run ({HISTORY_FILE}) without the {STATE_FILE} to "
                "continue it from (deleted when it finished; keep_state=True, or --keep-state, keeps it); its best "
                "checkpoint and history stay readable. "
                "To train it again from the start, delete the folder; or choose another checkpoint_dir"
            )


def _resumable_state(resume: Path) -> Path:
    """The state file ``resume`` (a run folder, or a state file) points at; ``CheckpointError`` that
    names the path and the fix when there is none."""
    if not resume.exists():
        raise CheckpointError(
            f"resume: {resume} does not exist: there is no such run folder, and no such checkpoint file; "
            "check the path, or pass checkpoint_dir instead of resume to start a new run"
        )
    if not resume.is_dir():
        return resume
    state = resume / STATE_FILE
    if state.is_file():
        return state
    if (resume / HISTORY_FILE).exists():
        raise CheckpointError(
            f"resume: {resume} holds a finished run ({HISTORY_FILE}) but no {STATE_FILE} to continue it from "
            "(deleted when it finished; keep_state=True, or --keep-state, keeps it); its best checkpoint and history "
            "stay readable. To train it again from the start, delete the folder; or choose another checkpoint_dir"
        )
    # A killed run leaves its lock file; one stopped by Ctrl-C or an error removes it, leaving the
    # folder empty, which looks the same as a folder made by hand.
    started = "the run there was" if (resume / LOCK_FILE).exists() else "if a run was started there, it was"
    raise CheckpointError(
        f"resume: {resume} holds no {STATE_FILE}: a run can be resumed from the end of its first epoch on, and "
        f"{started} stopped before its first epoch ended, so there is nothing to resume. Start it again from the "
        "first epoch in the same folder: pass checkpoint_dir instead of resume (the command line: the same command "
        "without --resume)"
    )


def _read_history(path: Path) -> History | None:
    try:
        return History.from_csv(path)
    except (OSError, ValueError):  # missing, or cut short by the kill: rewritten either way
        return None
