"""What a run folder's checkpoint says of the search to resume: its options, checked, and its data.

:func:`read_resume` reads ``checkpoint.npz`` (data only:
:mod:`prunetrain.search.checkpoint`), checks that its run config gives each
option the type a fresh run's command line gives it, and loads the data
again (a file only if its content is unchanged). The options' values are
then checked where a fresh run's are, as :func:`prunetrain.runs.resume`
rebuilds the run.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from prunetrain.data import Dataset, load_dataset
from prunetrain.errors import DataError, PrunetrainError
from prunetrain.run_folders import check_out, writable_folder
from prunetrain.search.checkpoint import (
    CHECKPOINT,
    OLD_CHECKPOINT,
    CheckpointState,
    read_checkpoint,
)


@dataclasses.dataclass(frozen=True)
class Resumed:
    """A checkpointed search to resume: its folder, checkpoint, state, run config and data."""

    out: Path
    path: Path
    saved: dict
    state: CheckpointState
    config: dict
    data: Dataset


def read_resume(
    out: str | os.PathLike,
    dataset: Dataset | str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    force: bool = False,
) -> Resumed:
    """The search checkpointed in the folder ``out``, its config checked and its data loaded.

    ``dataset`` and ``data_dir`` stand for the recorded ones (a
    :class:`~prunetrain.data.Dataset` object is not recorded: it must be
    given again); ``force`` resumes a folder that holds a finished run.

    Raises
    ------
    PrunetrainError
        One line: no checkpoint, an old pickled one, a damaged one, a config
        whose option has the wrong type, a finished run there without ``force``.
    DataError
        The recorded data file has changed since.
    """
    out = writable_folder(out, "--resume")
    path = out / CHECKPOINT
    if not path.exists() and (out / OLD_CHECKPOINT).exists():
        raise PrunetrainError(_old_checkpoint_message(out))
    saved, state = read_checkpoint(path)
    check_out(out, force)
    config, source, recorded_dir = _resume_options(saved, state)
    if dataset is not None:
        source = dataset
    if source is None:
        raise PrunetrainError(
            f"the search in {out} ran on a Dataset object: pass it again as dataset="
        )
    if data_dir is None:
        data_dir = recorded_dir
    data = source if isinstance(source, Dataset) else load_dataset(source, data_dir=data_dir)
    _check_same_data(config.get("data_source"), data, dataset is None)
    return Resumed(out, path, saved, state, config, data)


#: The types a checkpoint's run config must give each option (those a fresh run's command line
#: gives it); their values are then checked where a fresh run's are.
_RESUME_TYPES = {
    "arch": (str,),
    "init": (str,),
    "scale": (str,),
    "keep": (int, float),
    "keep_rule": (str,),
    "seed": (int,),
    "network_seed": (int,),
    "backend": (str,),
    "batch_size": (int, type(None)),
    "schedule": (str,),
    "budget": (str,),
    "patience": (int, type(None)),
    "method": (str,),
    "method_params": (dict,),
}


def _resume_options(saved: dict, state: CheckpointState) -> tuple[dict, object, object]:
    """The run config, data source and data folder of a checkpoint, their types checked.

    Raises
    ------
    PrunetrainError
        One line naming the option and its value.
    """
    where = f"checkpoint {state.path}"
    if set(saved) != {"run", "dataset", "data_dir"}:
        raise PrunetrainError(f"{where} is damaged (its config is not a search's)")
    config = saved["run"]
    if not isinstance(config, dict):
        raise PrunetrainError(f"{where} is damaged (its run config is {str(config)[:40]!r})")
    for key, kinds in _RESUME_TYPES.items():
        if key not in config:
            raise PrunetrainError(f"{where} is damaged (its config has no {key})")
        value = config[key]
        if not isinstance(value, kinds) or isinstance(value, bool):
            wanted = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise PrunetrainError(
                f"{where} has {key} {str(value)[:60]!r} in its config; expected {wanted}"
            )
    for key in ("dataset", "data_dir"):
        if not isinstance(saved[key], (str, type(None))):
            raise PrunetrainError(f"{where} has {key} {str(saved[key])[:60]!r}; expected a path")
    if state.searcher["params"] != json.dumps(config["method_params"], sort_keys=True, default=str):
        raise PrunetrainError(f"{where} is damaged (its searcher's options are not its config's)")
    return config, saved["dataset"], saved["data_dir"]


def _old_checkpoint_message(out: Path) -> str:
    """What to do with a run folder whose checkpoint is an old pickle (which is never read)."""
    how = "with the command that started it"
    record = out / "result.json"
    try:
        if not record.is_file() or record.stat().st_size > 2**24:  # a record is a few KiB
            raise ValueError
        command = json.loads(record.read_text())["provenance"]["command"]
        if isinstance(command, str) and len(command) < 1000:
            how = f"with the command that started it: {command}"
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        pass
    return (
        f"{out / OLD_CHECKPOINT} was written by an older prunetrain, which stored checkpoints "
        "as pickles; they are no longer read (loading a pickle can run any code). Rerun the "
        f"search from its start {how}"
    )


def _check_same_data(recorded: dict | None, data: Dataset, from_checkpoint: bool) -> None:
    """Raise if the data file a checkpointed search ran on has changed since (by its SHA-256)."""
    if not from_checkpoint or not recorded or "sha256" not in recorded:
        return
    now = (data.source or {}).get("sha256")
    if now != recorded["sha256"]:
        raise DataError(
            f"the data file {recorded['path']} has changed since the search was checkpointed "
            f"(SHA-256 now {str(now)[:12]}…, recorded {recorded['sha256'][:12]}…); restore it "
            "to resume the search"
        )
