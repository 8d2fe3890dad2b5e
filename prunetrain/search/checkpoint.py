"""Checkpoints of a running search: data only, everything it takes to continue exactly.

A checkpoint holds the searcher's state (its hyperparameters, arrays, counters
and random generator), the :class:`~prunetrain.problem.Problem`'s batch order,
cost counters and the evaluations and seconds the run has used, and the run
loop's own state (history, best mask, validation counters). With an
evaluation budget a search interrupted and resumed from a checkpoint returns
the ticket the uninterrupted search returns, byte for byte.

**Reading a checkpoint runs no code.** It is an ``.npz`` archive read by
:func:`prunetrain.npz.read_entries` (every entry checked before it is read,
nothing allocated beyond the file's size) that holds

- ``header``: UTF-8 JSON with the format, the run's config, a hash of that
  config, what the searched problem was (the frozen network's
  :attr:`~prunetrain.network.FrozenNetwork.weights_hash`, keep rule, batch
  size and schedule, seed, split sizes: :func:`problem_facts`), and the state
  as a tree of plain values (:class:`_Encoder` says which);
- ``pool_f8``, ``pool_i8``, ``pool_b1``, ...: every array of the state, one
  flat numeric array per dtype (an archive has few entries however many arrays
  the state holds);
- ``sha256``: a checksum of the header and of every pool (name, dtype, shape,
  bytes), so a checkpoint changed by a single byte is refused.

Objects are rebuilt only from classes named in fixed tables: a searcher from
its registered name (:data:`~prunetrain.search.base.SEARCHERS`), a helper
class it holds from :data:`STATE_CLASSES` (add one with :func:`state_class`),
a random generator's bit generator from :data:`BIT_GENERATORS`. No class is
ever looked up by a module path read from the file, and there is no pickle
anywhere. What the resumed run rebuilds from its config (the problem, its
network, backend, keep rule and data) is stored as a reference by name
(:func:`bound_objects`) and bound to the resumed run's own.

Checkpoints of an older prunetrain (``checkpoint.pkl``, a pickle) are never
read: :func:`prunetrain.api.resume_search` refuses them with a line saying how to rerun.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from prunetrain.backends.flips import FlipState
from prunetrain.errors import ArchiveError, PrunetrainError
from prunetrain.files import check_regular_file
from prunetrain.masks import Layout, Segment
from prunetrain.npz import MAX_NDIM, Expect, read_entries, write_entries
from prunetrain.problem import FlipSession, Problem
from prunetrain.search.base import SEARCHERS, Searcher
from prunetrain.search.pipeline import StageBudget

#: The checkpoint's file name inside a run folder.
CHECKPOINT = "checkpoint.npz"
#: The file name of the pickled checkpoints older versions wrote; refused, never read.
OLD_CHECKPOINT = "checkpoint.pkl"
FORMAT = "prunetrain-checkpoint"
#: 3: data only (an .npz of JSON and numeric arrays); 2 and older were pickles.
FORMAT_VERSION = 3

#: The largest checkpoint file read. A search's state is its searcher's arrays (a population,
#: flip caches of one batch), a few times the network's weights: far below this.
MAX_CHECKPOINT_BYTES = 8 * 2**30
#: The largest JSON header read (the history grows by one row of ~250 bytes per validation).
MAX_HEADER_BYTES = 256 * 2**20
#: The deepest nesting of the state tree (a pipeline's stage's flip cache is about 12 deep).
MAX_DEPTH = 100

#: The dtypes an array of the state may have, by their ``.npy`` codes without byte order.
DTYPES = ("b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8")

#: Bit generators a checkpointed ``np.random.Generator`` may use, rebuilt from this table.
BIT_GENERATORS: dict[str, type[np.random.BitGenerator]] = {
    "PCG64": np.random.PCG64,
    "PCG64DXSM": np.random.PCG64DXSM,
    "MT19937": np.random.MT19937,
    "Philox": np.random.Philox,
    "SFC64": np.random.SFC64,
}

#: Classes besides searchers whose objects a checkpoint may hold, by the name it stores.
#: Their objects are stored as their attributes (``vars(obj)``) and rebuilt without calling
#: ``__init__``; a ``NamedTuple`` as its fields.
STATE_CLASSES: dict[str, type] = {
    "FlipState": FlipState,
    "FlipSession": FlipSession,
    "Layout": Layout,
    "Segment": Segment,
    "StageBudget": StageBudget,
}

# Attribute names stored and set: identifiers, one leading underscore at most (no dunders).
_ATTRIBUTE = re.compile(r"^_?[A-Za-z][A-Za-z0-9_]{0,99}$")


class NotCheckpointable(TypeError):
    """The state holds something a checkpoint cannot store as data (the loop then warns)."""


def state_class(cls: type) -> type:
    """Class decorator: let checkpoints store objects of ``cls`` (a searcher's helper).

    Its objects are stored as their attributes, which must themselves be
    checkpointable, and rebuilt by setting them on an object made without
    calling ``__init__`` (as pickle does). The class is found again by its
    ``__name__``, which must be unique among :data:`STATE_CLASSES`.
    """
    name = cls.__name__
    if STATE_CLASSES.get(name, cls) is not cls:
        raise RuntimeError(f"two checkpointable classes are named {name!r}")
    STATE_CLASSES[name] = cls
    return cls


def config_hash(config: dict) -> str:
    """SHA-256 (hex) of ``config`` as canonical JSON: what names a run folder and guards a checkpoint."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def bound_objects(problem: Problem) -> dict[str, object]:
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
        "w_train": problem.w_train,
        "w_val": problem.w_val,
    }


def problem_facts(problem: Problem) -> dict:
    """What a resumed search's problem must share with the checkpointed one, JSON-ready.

    The frozen network (its weights hash), the keep rule, the batch size and
    schedule, the seed of the batch order and the sizes of the splits.
    """
    return {
        "weights_hash": problem.network.weights_hash,
        "keep": problem.rule.keep,
        "keep_rule": problem.rule.kind,
        "batch_size": problem.batch_size,
        "schedule": problem.schedule,
        "seed": problem.seed,
        "n_train": problem.n_train,
        "n_val": problem.n_val,
    }


def _canonical(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=str)


@dataclasses.dataclass
class Checkpoint:
    """Where the run loop writes its checkpoints, how often, and what it writes beside them.

    Parameters
    ----------
    path : path
        The checkpoint file (``DIR/checkpoint.npz`` for ``prunetrain search``).
    every : float
        Seconds of wall time between checkpoints. One is written once the
        search has started, then every ``every`` seconds at a step boundary,
        and when the search is interrupted.
    config : dict
        JSON-ready facts the resumed run needs to rebuild its problem
        (``runs.search`` stores the run's config here). Its hash is stored
        with it, and a checkpoint whose config no longer matches it is refused.
    """

    path: Path
    every: float = 60.0
    config: dict = dataclasses.field(default_factory=dict)

    def write(self, searcher: Searcher, problem: Problem, loop_state: dict) -> Path:
        """Write the search's whole state, atomically.

        Raises
        ------
        NotCheckpointable
            Something in the state cannot be stored as data; nothing is written.
        """
        snapshot = {"searcher": searcher, "problem": problem.get_state(), "loop": loop_state}
        encoder = _Encoder(bound_objects(problem), problem.backend)
        tree = encoder.encode(snapshot, "state", 0)
        header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config,
            "config_sha256": config_hash(self.config),
            "problem": problem_facts(problem),
            "searcher": {"name": searcher.name, "params": _canonical(searcher.get_params())},
            "state": tree,
        }
        try:
            text = json.dumps(header, allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as e:
            raise NotCheckpointable(f"its config is not JSON ({e})") from None
        pools = encoder.pools()
        entries = {
            "header": np.frombuffer(text, dtype=np.uint8),
            "sha256": np.frombuffer(_checksum(text, pools), dtype=np.uint8),
            **{f"pool_{code}": pool for code, pool in pools.items()},
        }
        return write_entries(self.path, entries)


@dataclasses.dataclass
class CheckpointState:
    """A checkpoint's state as read: checked, not yet rebuilt (:meth:`restore` does that)."""

    path: Path
    tree: object
    pools: dict[str, np.ndarray]
    problem: dict
    searcher: dict

    def restore(self, problem: Problem) -> dict:
        """The searcher, the problem's state and the loop's state, bound to ``problem``.

        Raises
        ------
        PrunetrainError
            ``problem`` is not the one searched (another network, keep rule,
            batch schedule, seed or data), or the state is damaged.
        """
        now = problem_facts(problem)
        for key, value in now.items():
            if self.problem.get(key) != value:
                what = "network (weights hash)" if key == "weights_hash" else key
                raise PrunetrainError(
                    f"checkpoint {self.path} was written for another problem: its {what} is "
                    f"{str(self.problem.get(key))[:24]!r}, the one its config builds has "
                    f"{str(value)[:24]!r}"
                )
        decoder = _Decoder(self.pools, bound_objects(problem), problem.backend, self.path)
        try:
            state = decoder.decode(self.tree, 0)
        except RecursionError:
            raise decoder.damaged("its state is nested too deeply") from None
        if not isinstance(state, dict) or set(state) != {"searcher", "problem", "loop"}:
            raise decoder.damaged("its state is not a search's state")
        searcher = state["searcher"]
        try:
            same = isinstance(searcher, Searcher) and (
                searcher.name == self.searcher.get("name")
                and _canonical(searcher.get_params()) == self.searcher.get("params")
            )
        except AttributeError:  # a hyperparameter left out of its attributes
            same = False
        if not same:
            raise decoder.damaged("its searcher is not the one its header names")
        return state


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, CheckpointState]:
    """The config and the state of the checkpoint at ``path``, checked but not rebuilt.

    Reads only JSON and numeric arrays (:func:`prunetrain.npz.read_entries`):
    no pickle, no class looked up by a name from the file.

    Raises
    ------
    PrunetrainError
        One line: no checkpoint there; an old pickled one; a file that is
        damaged (its checksum does not match), too large or of another format;
        a config that was edited since the checkpoint was written.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise PrunetrainError(f"no checkpoint at {path}")
    check_regular_file(path, "checkpoint")
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise PrunetrainError(
            f"checkpoint {path} is {size} bytes; a checkpoint may be at most "
            f"{MAX_CHECKPOINT_BYTES} bytes ({MAX_CHECKPOINT_BYTES // 2**30} GiB)"
        )
    expected: dict[str, Expect] = {
        "header": Expect("bytes", max_items=MAX_HEADER_BYTES),
        "sha256": Expect("bytes", length=32),
    }
    for code in DTYPES:
        most = MAX_CHECKPOINT_BYTES // np.dtype(code).itemsize
        expected[f"pool_{code}"] = Expect("array", max_items=most, ndim=1, optional=True)
    try:
        entries = read_entries(path, expected, MAX_CHECKPOINT_BYTES)
    except ArchiveError as e:
        raise PrunetrainError(f"checkpoint {path} is damaged or not a checkpoint: {e}") from None
    text = entries["header"].tobytes()
    pools = {}
    for code in DTYPES:
        pool = entries.get(f"pool_{code}")
        if pool is not None:
            if pool.dtype.str[1:] != code:
                raise PrunetrainError(f"checkpoint {path} is damaged (pool {code} is {pool.dtype})")
            pools[code] = pool
    if _checksum(text, pools) != entries["sha256"].tobytes():
        raise PrunetrainError(
            f"checkpoint {path} is damaged: its checksum does not match its contents"
        )
    header = _parse_header(text, path)
    return header["config"], CheckpointState(
        path, header["state"], pools, header["problem"], header["searcher"]
    )


def _parse_header(text: bytes, path: Path) -> dict:
    """The header's JSON, its fields checked (the state itself is checked as it is rebuilt)."""

    def refuse_constant(name: str):
        raise ValueError(f"{name} is not JSON")

    try:
        header = json.loads(text.decode("utf-8"), parse_constant=refuse_constant)
    except RecursionError:
        raise PrunetrainError(
            f"checkpoint {path} is damaged (its header nests too deeply)"
        ) from None
    except ValueError as e:  # also UnicodeDecodeError and JSONDecodeError
        brief = " ".join(str(e).split())[:80]
        raise PrunetrainError(f"checkpoint {path} is damaged (its header: {brief})") from None
    keys = {
        "format",
        "format_version",
        "config",
        "config_sha256",
        "problem",
        "searcher",
        "state",
    }
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise PrunetrainError(f"{path} is not a prunetrain checkpoint")
    if header.get("format_version") != FORMAT_VERSION:
        raise PrunetrainError(
            f"{path} has checkpoint format {header.get('format_version')!r}; "
            f"this prunetrain reads {FORMAT_VERSION}"
        )
    searcher = header.get("searcher")
    if (
        set(header) != keys
        or not isinstance(header["config"], dict)
        or not isinstance(header["problem"], dict)
        or not isinstance(searcher, dict)
        or set(searcher) != {"name", "params"}
        or not all(isinstance(v, str) for v in searcher.values())
    ):
        raise PrunetrainError(f"checkpoint {path} is damaged (its header is incomplete)")
    if header["config_sha256"] != config_hash(header["config"]):
        raise PrunetrainError(
            f"checkpoint {path} was edited: its config does not match the hash it was written "
            "with; rerun the search instead of resuming it"
        )
    return header


def _checksum(text: bytes, pools: dict[str, np.ndarray]) -> bytes:
    """SHA-256 over the header and every pool's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    h.update(b"%s %d\n" % (FORMAT.encode(), FORMAT_VERSION))
    h.update(b"header %d\n" % len(text))
    h.update(text)
    for code in sorted(pools):
        pool = np.ascontiguousarray(pools[code])
        h.update(f"\npool_{code} {pool.dtype.str} {pool.shape}\n".encode())
        h.update(memoryview(pool).cast("B"))
    return h.digest()


# --- the state as a tree of plain values --------------------------------------------------


class _Encoder:
    """The state as a JSON-ready tree, its arrays gathered into one pool per dtype.

    The tree's values are JSON's own (null, true/false, integers, finite
    floats, strings, lists for Python lists) and objects of exactly one of these forms:

    - ``{"float": "nan" | "inf" | "-inf"}``;
    - ``{"tuple": [...]}``, ``{"dict": [[key, value], ...]}`` (keys of any storable
      hashable kind);
    - ``{"array": [dtype, offset, shape, order]}``: a NumPy array of a numeric
      dtype, ``prod(shape)`` items of pool ``dtype`` from ``offset``, in C or
      Fortran order; ``{"device": [...]}``: the same on the backend's device;
      ``{"scalar": [dtype, offset]}``: a NumPy scalar;
    - ``{"rng": [bit generator, state]}``: an ``np.random.Generator``;
    - ``{"bound": name}``: an object of :func:`bound_objects`;
    - ``{"searcher": name, "attrs": {...}}``: a registered searcher and its attributes;
      ``{"object": name, "attrs": {...}}``: an object of :data:`STATE_CLASSES`;
      ``{"namedtuple": name, "fields": [...]}``: a named tuple of it;
    - ``{"ref": n}``: the ``n``-th list, tuple, dict, array, generator or object
      of the tree (in the order written), so that shared references stay
      shared and cycles (a pipeline's stage points back to the pipeline) close.
    """

    def __init__(self, bound: dict[str, object], backend) -> None:
        self.bound = {id(obj): name for name, obj in bound.items() if obj is not None}
        self.backend = backend
        self.memo: dict[int, int] = {}
        self.alive: list[object] = []  # keeps every memoised object alive, so ids stay unique
        self.unfinished: set[int] = set()  # tuples being encoded: a reference to one is a cycle
        self.arrays: dict[str, list[np.ndarray]] = {}
        self.sizes: dict[str, int] = {}

    def pools(self) -> dict[str, np.ndarray]:
        return {code: np.concatenate(parts) for code, parts in self.arrays.items()}

    def encode(self, obj: object, where: str, depth: int) -> object:
        if depth > MAX_DEPTH:
            raise NotCheckpointable(f"{where} is nested more than {MAX_DEPTH} deep")
        kind = type(obj)
        if obj is None or kind in (bool, int, str):
            return obj
        if kind is float:
            return obj if math.isfinite(obj) else {"float": repr(obj)}
        if id(obj) in self.bound:
            return {"bound": self.bound[id(obj)]}
        if id(obj) in self.memo:
            if id(obj) in self.unfinished:
                raise NotCheckpointable(f"{where} is a cycle through a tuple")
            return {"ref": self.memo[id(obj)]}
        if isinstance(obj, np.generic):
            return {"scalar": self._array(np.asarray(obj), where)[:2]}
        self.memo[id(obj)] = len(self.memo)
        self.alive.append(obj)
        deeper = depth + 1
        if kind is list:
            return [self.encode(x, f"{where}[{i}]", deeper) for i, x in enumerate(obj)]
        if kind is tuple or kind in STATE_CLASSES.values() and issubclass(kind, tuple):
            self.unfinished.add(id(obj))
            items = [self.encode(x, f"{where}[{i}]", deeper) for i, x in enumerate(obj)]
            self.unfinished.discard(id(obj))
            if kind is tuple:
                return {"tuple": items}
            return {"namedtuple": kind.__name__, "fields": items}
        if kind is dict:
            return {
                "dict": [
                    [
                        self.encode(k, f"{where} key", deeper),
                        self.encode(v, f"{where}[{k!r}]", deeper),
                    ]
                    for k, v in obj.items()
                ]
            }
        if kind is np.ndarray:
            return {"array": self._array(obj, where)}
        if kind is np.random.Generator:
            bit_generator = obj.bit_generator
            name = type(bit_generator).__name__
            if BIT_GENERATORS.get(name) is not type(bit_generator):
                raise NotCheckpointable(f"{where} uses the bit generator {name}")
            return {"rng": [name, self.encode(bit_generator.state, f"{where}.state", deeper)]}
        if self.backend.is_device_array(obj):
            return {"device": self._array(self.backend.to_host(obj), where)}
        if isinstance(obj, Searcher) and SEARCHERS.get(obj.name) is kind:
            return {"searcher": obj.name, "attrs": self._attributes(obj, where, deeper)}
        if STATE_CLASSES.get(kind.__name__) is kind:
            return {"object": kind.__name__, "attrs": self._attributes(obj, where, deeper)}
        raise NotCheckpointable(
            f"{where} is a {kind.__module__}.{kind.__qualname__}, which a checkpoint does not store"
        )

    def _attributes(self, obj: object, where: str, depth: int) -> dict:
        attrs = getattr(obj, "__dict__", None)
        if attrs is None or hasattr(type(obj), "__slots__") and type(obj).__slots__:
            raise NotCheckpointable(f"{where} keeps its state outside __dict__")
        out = {}
        for name, value in attrs.items():
            _check_attribute(type(obj), name, f"{where}.{name}", NotCheckpointable)
            out[name] = self.encode(value, f"{where}.{name}", depth)
        return out

    def _array(self, array: np.ndarray, where: str) -> list:
        code = array.dtype.str[1:]
        if code not in DTYPES or array.dtype.str[0] == ">":
            raise NotCheckpointable(f"{where} is an array of dtype {array.dtype}")
        if array.ndim > MAX_NDIM:
            raise NotCheckpointable(f"{where} has more than {MAX_NDIM} dimensions")
        fortran = array.ndim > 1 and array.flags.f_contiguous and not array.flags.c_contiguous
        flat = (array.T if fortran else array).ravel()  # a copy only if it is not contiguous
        offset = self.sizes.get(code, 0)
        self.arrays.setdefault(code, []).append(flat.copy())
        self.sizes[code] = offset + flat.size
        return [code, offset, list(array.shape), "F" if fortran else "C"]


def _check_attribute(cls: type, name: object, where: str, error: Callable[[str], Exception]):
    """Raise ``error`` unless ``name`` may be stored and set as an attribute of a ``cls`` object.

    An identifier with at most one leading underscore, and not the name of a
    method or property of the class (a value there would replace it).
    """
    if not isinstance(name, str) or not _ATTRIBUTE.match(name):
        raise error(f"{where}: {str(name)[:40]!r} is not an attribute name a checkpoint stores")
    found = getattr(cls, name, None)
    if callable(found) or isinstance(found, property) or hasattr(found, "__get__"):
        raise error(f"{where}: {name!r} is a method or property of {cls.__name__}")


_PENDING = object()


class _Decoder:
    """Rebuild :class:`_Encoder`'s tree, refusing anything that is not of its forms."""

    def __init__(self, pools: dict[str, np.ndarray], bound: dict[str, object], backend, path):
        self.pools = pools
        self.bound = bound
        self.backend = backend
        self.path = path
        self.slots: list[object] = []

    def damaged(self, why: str) -> PrunetrainError:
        return PrunetrainError(f"checkpoint {self.path} is damaged ({why})")

    def _slot(self, value: object = _PENDING) -> int:
        self.slots.append(value)
        return len(self.slots) - 1

    def decode(self, node: object, depth: int) -> object:
        if depth > MAX_DEPTH:
            raise self.damaged(f"its state is nested more than {MAX_DEPTH} deep")
        kind = type(node)
        if node is None or kind in (bool, int, float, str):
            return node
        deeper = depth + 1
        if kind is list:
            out: list = []
            self._slot(out)
            out.extend(self.decode(x, deeper) for x in node)
            return out
        if kind is not dict or not node:
            raise self.damaged(f"a node of type {kind.__name__}")
        tag = next(iter(node))
        form = _FORMS.get(tag)
        if form is None or set(node) != form:
            raise self.damaged(f"an unknown node {sorted(node)[:3]}")
        value = node[tag]
        if tag == "float":
            if value not in ("nan", "inf", "-inf"):
                raise self.damaged(f"a float {str(value)[:20]!r}")
            return float(value)
        if tag == "bound":
            if not isinstance(value, str) or self.bound.get(value) is None:
                raise self.damaged(f"a reference to {str(value)[:40]!r}")
            return self.bound[value]
        if tag == "ref":
            if type(value) is not int or not 0 <= value < len(self.slots):
                raise self.damaged(f"a reference to object {str(value)[:20]}")
            if self.slots[value] is _PENDING:
                raise self.damaged("a cycle through a tuple")
            return self.slots[value]
        if tag == "scalar":
            return self._array(value, scalar=True)
        if tag in ("array", "device"):
            slot = self._slot()
            array = self._array(value)
            if tag == "device":
                array = self.backend.to_device(array)
            self.slots[slot] = array
            return array
        if tag == "tuple":
            slot = self._slot()
            items = tuple(self.decode(x, deeper) for x in self._list(value, "tuple"))
            self.slots[slot] = items
            return items
        if tag == "namedtuple":
            cls = STATE_CLASSES.get(value) if isinstance(value, str) else None
            if cls is None or not issubclass(cls, tuple):
                raise self.damaged(f"an unknown named tuple {str(value)[:40]!r}")
            slot = self._slot()
            fields = [self.decode(x, deeper) for x in self._list(node["fields"], "namedtuple")]
            try:
                items = cls(*fields)
            except TypeError:
                raise self.damaged(f"a {value} of {len(fields)} fields") from None
            self.slots[slot] = items
            return items
        if tag == "dict":
            out_dict: dict = {}
            self._slot(out_dict)
            for pair in self._list(value, "dict"):
                if type(pair) is not list or len(pair) != 2:
                    raise self.damaged("a dict item that is not a pair")
                key = self.decode(pair[0], deeper)
                try:
                    hash(key)
                except TypeError:
                    raise self.damaged("a dict key that is not a value") from None
                out_dict[key] = self.decode(pair[1], deeper)
            return out_dict
        if tag == "rng":
            return self._generator(value, deeper)
        return self._object(tag, value, node["attrs"], deeper)

    def _list(self, value: object, what: str) -> list:
        if type(value) is not list:
            raise self.damaged(f"a {what} without a list")
        return value

    def _array(self, value: object, scalar: bool = False):
        if scalar:
            ok = type(value) is list and len(value) == 2
            code, offset, shape, order = (*value, [], "C") if ok else (None, 0, [], "C")
        else:
            ok = type(value) is list and len(value) == 4
            code, offset, shape, order = value if ok else (None, 0, [], "C")
        ok = (
            ok
            and code in self.pools
            and type(offset) is int
            and type(shape) is list
            and len(shape) <= MAX_NDIM
            and all(type(n) is int and n >= 0 for n in shape)
            and order in ("C", "F")
        )
        if not ok:
            raise self.damaged(f"an array node {str(value)[:60]}")
        pool = self.pools[code]
        count = 1 if scalar else math.prod(shape)
        if not 0 <= offset <= offset + count <= len(pool):
            raise self.damaged(f"an array of shape {tuple(shape)} beyond its pool of {len(pool)}")
        if scalar:
            return pool[offset]
        flat = pool[offset : offset + count]
        if order == "F":
            return flat.reshape(shape[::-1]).T.copy(order="F")
        return flat.reshape(shape).copy()  # writable, aligned, owned

    def _generator(self, value: object, depth: int) -> np.random.Generator:
        slot = self._slot()
        if type(value) is not list or len(value) != 2 or value[0] not in BIT_GENERATORS:
            raise self.damaged(f"a random generator {str(value)[:40]}")
        bit_generator = BIT_GENERATORS[value[0]]()
        state = self.decode(value[1], depth)
        try:
            bit_generator.state = state
        except (TypeError, ValueError, KeyError, OverflowError):
            raise self.damaged("a random generator's state") from None
        rng = np.random.Generator(bit_generator)
        self.slots[slot] = rng
        return rng

    def _object(self, tag: str, name: object, attrs: object, depth: int) -> object:
        table = SEARCHERS if tag == "searcher" else STATE_CLASSES
        cls = table.get(name) if isinstance(name, str) else None
        if cls is None or issubclass(cls, tuple):
            raise self.damaged(f"an unknown {tag} {str(name)[:40]!r}")
        if type(attrs) is not dict:
            raise self.damaged(f"a {name} without attributes")
        obj = cls.__new__(cls)  # as pickle does: its attributes follow
        self._slot(obj)
        values = {}
        for attr, node in attrs.items():
            _check_attribute(cls, attr, f"{name}.{attr}", self.damaged)
            values[attr] = self.decode(node, depth)
        vars(obj).update(values)
        return obj


# Each node form: its tag (the first key) and the keys it has.
_FORMS = {
    "float": {"float"},
    "tuple": {"tuple"},
    "dict": {"dict"},
    "array": {"array"},
    "device": {"device"},
    "scalar": {"scalar"},
    "rng": {"rng"},
    "bound": {"bound"},
    "ref": {"ref"},
    "searcher": {"searcher", "attrs"},
    "object": {"object", "attrs"},
    "namedtuple": {"namedtuple", "fields"},
}
