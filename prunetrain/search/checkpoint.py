"""Checkpoints of a running search: everything it takes to continue exactly where it was.

A checkpoint holds the searcher itself (pickled: its hyperparameters and all
its state, random generator included), the :class:`~prunetrain.problem.Problem`'s
batch order, cost counters and the evaluations and seconds the run has used,
and the run loop's own state (history, best mask, validation counters). With
an evaluation budget a search interrupted and resumed from a checkpoint
returns the ticket the uninterrupted search returns, byte for byte.

What is *not* pickled is what the resumed run rebuilds from its config: the
problem (which owns the budget), its network, backend, keep rule and data.
The pickle stores references to them (``persistent_id``), and the resumed
loop binds the references to its own. So any searcher whose
attributes are picklable — NumPy arrays, generators, plain values, other
searchers, the problem — is checkpointed without code of its own (see
:class:`~prunetrain.search.base.Searcher` for the protocol).

The file is written atomically (a temporary name, then a rename). Reading it
rebuilds only prunetrain and NumPy objects (a restricted unpickler); still,
resume only your own runs' checkpoints.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
from pathlib import Path

import numpy as np

from prunetrain.errors import PrunetrainError
from prunetrain.files import atomic_write

#: The checkpoint's file name inside a run folder.
CHECKPOINT = "checkpoint.pkl"
FORMAT = "prunetrain-checkpoint"
#: 2: the problem owns the run's budget (its state holds the evaluations and seconds used).
FORMAT_VERSION = 2


@dataclasses.dataclass
class Checkpoint:
    """Where the run loop writes its checkpoints, how often, and what it writes beside them.

    Parameters
    ----------
    path : path
        The checkpoint file (``DIR/checkpoint.pkl`` for ``prunetrain search``).
    every : float
        Seconds of wall time between checkpoints. One is written once the
        search has started, then every ``every`` seconds at a step boundary,
        and when the search is interrupted.
    config : dict
        JSON-ready facts the resumed run needs to rebuild its problem
        (``run_search`` stores its arguments here).
    """

    path: Path
    every: float = 60.0
    config: dict = dataclasses.field(default_factory=dict)

    def write(self, state: bytes) -> Path:
        """Write ``state`` (the loop's pickled state) with the config, atomically."""
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config,
            "state": state,
        }
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        return atomic_write(self.path, lambda f: f.write(data))


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, bytes]:
    """The config and the loop state of the checkpoint at ``path``.

    Raises
    ------
    PrunetrainError
        No checkpoint there, or it is damaged or of another format.
    """
    path = Path(path)
    if not path.is_file():
        raise PrunetrainError(f"no checkpoint at {path}")
    try:
        payload = restricted_loads(path.read_bytes())
    except PrunetrainError:
        raise
    except Exception as e:  # noqa: BLE001  (whatever a damaged pickle raises)
        raise PrunetrainError(
            f"{path} is damaged or not a checkpoint ({type(e).__name__})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise PrunetrainError(f"{path} is not a prunetrain checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise PrunetrainError(
            f"{path} has checkpoint format {payload.get('format_version')!r}; "
            f"this prunetrain reads {FORMAT_VERSION}"
        )
    if not isinstance(payload.get("config"), dict) or not isinstance(payload.get("state"), bytes):
        raise PrunetrainError(f"{path} is damaged (no config or state)")
    return payload["config"], payload["state"]


# --- pickling with references to what the resumed run rebuilds ---------------------------


def bound_objects(problem) -> dict[str, object]:
    """The objects a checkpoint refers to instead of storing, by the name it stores."""
    return {
        "problem": problem,
        "network": problem.network,
        "backend": problem.backend,
        "rule": problem.rule,
        "X_train": problem.X_train,
        "y_train": problem.y_train,
        "X_val": problem.X_val,
        "y_val": problem.y_val,
    }


def dumps_state(state: object, bound: dict[str, object]) -> bytes:
    """Pickle ``state``, storing each object of ``bound`` as a reference to its name."""
    names = {id(obj): name for name, obj in bound.items()}

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return names.get(id(obj))

        def reducer_override(self, obj):
            # A device array (CuPy) is stored on the host and moved back on resume.
            if type(obj).__module__.startswith("cupy") and hasattr(obj, "__cuda_array_interface__"):
                return _to_device, (obj.get(),)
            return NotImplemented

    buffer = io.BytesIO()
    Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
    return buffer.getvalue()


def loads_state(data: bytes, bound: dict[str, object]) -> object:
    """Invert :func:`dumps_state`, binding references to the objects of ``bound``."""
    return restricted_loads(data, bound)


def _to_device(array: np.ndarray):
    import cupy

    return cupy.asarray(array)


# Functions a checkpoint may call to rebuild NumPy objects (classes are checked apart).
_ALLOWED_FUNCTIONS = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("copyreg", "_reconstructor"),
    (__name__, "_to_device"),
}
_ALLOWED_BUILTINS = {
    "set", "frozenset", "complex", "slice", "range", "bytearray", "dict", "list", "tuple",
    "int", "float", "bool", "str", "bytes", "object",
}  # fmt: skip
_REFUSED_CLASSES = {("numpy", "memmap"), ("numpy._core.memmap", "memmap")}  # writes files


def restricted_loads(data: bytes, bound: dict[str, object] | None = None) -> object:
    """Unpickle ``data`` rebuilding only prunetrain and NumPy objects (and plain Python ones)."""
    bound = bound or {}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if module == "builtins" and name in _ALLOWED_BUILTINS:
                return super().find_class(module, name)
            if (module, name) in _ALLOWED_FUNCTIONS:
                return super().find_class(module, name)
            if module == "collections" and name in ("OrderedDict", "deque", "defaultdict"):
                return super().find_class(module, name)
            top = module.split(".")[0]
            if top in ("prunetrain", "numpy") and (module, name) not in _REFUSED_CLASSES:
                found = super().find_class(module, name)
                # Classes, and the helpers Cython gives NumPy's classes to unpickle them.
                if isinstance(found, type) or (
                    top == "numpy" and name.startswith("__pyx_unpickle_")
                ):
                    return found
            raise PrunetrainError(f"a checkpoint may not rebuild {module}.{name}")

        def persistent_load(self, pid):
            if pid not in bound:
                raise PrunetrainError(f"a checkpoint refers to {pid!r}, which is not bound here")
            return bound[pid]

    return Unpickler(io.BytesIO(data)).load()
