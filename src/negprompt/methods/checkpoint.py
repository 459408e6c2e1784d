"""Per-epoch checkpoints of a training loop, so that a stage killed mid-run (SIGKILL, a lost node, an
out-of-time job) continues from its last finished epoch and ends bit-identical to an uninterrupted run.

What a loop needs to continue exactly: its learned tensors, the optimiser's, scheduler's and gradient
scaler's state, every RNG it may draw from (its batch-order generator; torch's, CUDA's, numpy's and
Python's global ones), and the per-epoch records so far. The stage replays those records into DVCLive:
DVC deletes a stage's outputs before it runs it again, so DVCLive's own `resume=True` (which reads the
step back from its metrics.json) would find nothing to resume from.

A checkpoint file is one JSON header line (format, run key, finished epochs, the payload's sha256), then
a `torch.save` payload loaded with `weights_only=True` (no arbitrary pickle). `head -1 <file>` shows how
far a run got. Files live outside every DVC output (`.negprompt/checkpoints/`, git- and dvc-ignored by
the ignore files this module writes there), are replaced atomically after each epoch and removed by the stage
once its outputs are written.

A queued experiment runs in DVC's temporary copy of the repository and a grid's Slurm job in a clone deleted
after each attempt: there the workspace folder is gone by the time the row is retried. With
`NEGPROMPT_CHECKPOINTS=<absolute folder>` (grid.py sets it for its queue workers and jobs) the checkpoints live
in that folder instead, one sub-folder per run key (`<folder>/<key>/<stage>_seed<seed>.pt`), so that a retried
row finds its own and rows of other params or code never touch each other's.

A file that cannot be used (another run key: other params, inputs or code; a wrong sha256: truncated or
altered; unreadable) gives a one-line notice and a fresh start, not an error: a checkpoint is saved time,
never a result, and the fresh run overwrites it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from negprompt import NegPromptError
from negprompt.io import atomic_path

CHECKPOINTS = Path(".negprompt/checkpoints")  # relative to the repository root, as DVC runs stages there
SHARED_ENV = "NEGPROMPT_CHECKPOINTS"  # an absolute folder shared by the runs of a grid: one sub-folder per run key
FORMAT = 1
_IGNORE_ALL = "# negprompt's resumable-training checkpoints: never versioned (methods/checkpoint.py)\n*\n"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_sha256() -> str:
    """One digest of the imported negprompt package's Python files: a run resumed under other code would
    end as neither the old nor the new code's result."""
    import negprompt

    root = Path(negprompt.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def run_key(params: dict, files: Iterable[str | Path]) -> str:
    """What decides a run: `params` (JSON-able: the validated params, the stage and seed), the bytes of
    each input file (a missing file counts as missing) and the library's code."""
    inputs = {str(p): file_sha256(Path(p)) if Path(p).is_file() else None for p in files}
    blob = json.dumps({"params": params, "inputs": inputs, "code": package_sha256()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class LoopState:
    """The live objects of one training loop that a checkpoint saves and restores in place."""

    tensors: dict[str, torch.Tensor]  # the learned parameters, by name (restored with copy_)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # the loop's batch order
    scaler: torch.amp.GradScaler


def _global_rng() -> dict:
    np_state = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached": float(np_state[4]),
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_global_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    py_state = state["python"]
    random.setstate((py_state["version"], tuple(py_state["internal"]), py_state["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(record: dict) -> dict:
    """A per-epoch record with numpy scalars as Python numbers (same value, same text when written), so
    that `weights_only` loading accepts it."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in record.items()}


class Checkpoint:
    """The checkpoint of one run (e.g. `train_pos` seed 1) at `path`, valid only for run key `key`.

    On creation it reads a matching file, if any: `epoch` finished epochs and their `curve` records are
    then what the loop continues from (`restore`); otherwise `epoch` is 0 and `curve` empty.
    """

    def __init__(
        self, path: str | Path, key: str, notice: Callable[[str], None] = _stderr, home: str | Path | None = None
    ):
        # home: the checkpoint folder that holds the ignore files (the file's own folder unless it is a run key's
        # sub-folder of a shared folder, removed with its last checkpoint)
        self.path, self.key, self.notice = Path(path), key, notice
        self.home = Path(home) if home is not None else self.path.parent
        self._payload = self._read()

    @property
    def epoch(self) -> int:
        return self._payload["epoch"] if self._payload else 0

    @property
    def curve(self) -> list[dict]:
        return list(self._payload["curve"]) if self._payload else []

    def _read(self) -> dict | None:
        if not self.path.is_file():
            return None
        fresh = "starting from epoch 1"
        try:
            raw = self.path.read_bytes()
            head, _, body = raw.partition(b"\n")
            header = json.loads(head)
        except (OSError, ValueError) as e:
            self.notice(f"notice: {self.path}: unreadable checkpoint ({e}); ignored, {fresh}")
            return None
        if header.get("format") != FORMAT or header.get("key") != self.key:
            self.notice(f"notice: {self.path}: checkpoint of a run with other params, inputs or code; ignored, {fresh}")
            return None
        if hashlib.sha256(body).hexdigest() != header.get("sha256"):
            self.notice(
                f"notice: {self.path}: checkpoint does not match its sha256 (truncated or altered); ignored, {fresh}"
            )
            return None
        try:
            payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001  any unpickling failure means the same: not usable
            self.notice(f"notice: {self.path}: unreadable checkpoint ({type(e).__name__}); ignored, {fresh}")
            return None
        self.notice(f"notice: resuming from {self.path}: {payload['epoch']} epochs done")
        return payload

    def restore(self, state: LoopState) -> tuple[int, list[dict], list[dict]]:
        """Put the saved state into `state`'s objects, in place. Returns (finished epochs, their records,
        the per-epoch snapshots kept for selection); (0, [], []) when there is nothing to resume."""
        payload = self._payload
        if not payload:
            return 0, [], []
        with torch.no_grad():
            for name, tensor in state.tensors.items():
                tensor.copy_(payload["tensors"][name])
        state.optimizer.load_state_dict(payload["optimizer"])
        state.scheduler.load_state_dict(payload["scheduler"])
        state.scaler.load_state_dict(payload["scaler"])
        state.generator.set_state(payload["generator"])
        _set_global_rng(payload["rng"])
        return payload["epoch"], list(payload["curve"]), list(payload["snapshots"])

    def save(self, state: LoopState, epoch: int, curve: list[dict], snapshots: list[dict]) -> None:
        """Replace the file with the state after `epoch` finished epochs (atomically: a kill during the
        write leaves the previous complete file)."""
        payload = {
            "epoch": epoch,
            "tensors": {k: v.detach().cpu().clone() for k, v in state.tensors.items()},
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "scaler": state.scaler.state_dict(),
            "generator": state.generator.get_state(),
            "rng": _global_rng(),
            "curve": [_plain(r) for r in curve],
            "snapshots": snapshots,
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        body = buffer.getvalue()
        header = {"format": FORMAT, "key": self.key, "epoch": epoch, "sha256": hashlib.sha256(body).hexdigest()}
        self._ignore_dir()
        with atomic_path(self.path) as tmp:
            tmp.write_bytes(json.dumps(header, sort_keys=True).encode() + b"\n" + body)
        self._payload = payload

    def _ignore_dir(self) -> None:
        """Make the checkpoint folder ignored by git and DVC (a `*` ignore file in it, as .pytest_cache does)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for name in (".gitignore", ".dvcignore"):
            if not (self.home / name).is_file():
                (self.home / name).write_text(_IGNORE_ALL)

    def remove(self) -> None:
        """Called once the stage's outputs are written: the run is complete, nothing to resume."""
        self.path.unlink(missing_ok=True)
        self._payload = None
        if self.path.parent != self.home:
            try:
                self.path.parent.rmdir()  # a run key's sub-folder, once its last checkpoint is gone
            except OSError:
                pass  # another seed's or stage's checkpoint of the same run key is still there


def shared_root() -> Path | None:
    """The folder `NEGPROMPT_CHECKPOINTS` names, or None when it is unset or empty; a relative path is an error (a
    queued row's or a job's working directory is a temporary copy: a relative folder would be inside it)."""
    value = os.environ.get(SHARED_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise NegPromptError(f"{SHARED_ENV}={value}: expected an absolute folder (checkpoints shared between runs)")
    return path


def stage_checkpoint(
    stage: str, seed: int, params: dict, inputs: Iterable[str | Path], root: Path | None = None
) -> Checkpoint:
    """The checkpoint of stage `stage`, seed `seed`, keyed by the params, stage, seed, input files and code
    (`run_key`): `<root>/<stage>_seed<seed>.pt` (root: `.negprompt/checkpoints` of the working directory), or, with
    NEGPROMPT_CHECKPOINTS set and no `root`, `<that folder>/<key>/<stage>_seed<seed>.pt`."""
    key = run_key({"stage": stage, "seed": seed, "params": params}, inputs)
    shared = shared_root() if root is None else None
    if shared is not None:
        return Checkpoint(shared / key / f"{stage}_seed{seed}.pt", key, home=shared)
    return Checkpoint((root or CHECKPOINTS) / f"{stage}_seed{seed}.pt", key)
