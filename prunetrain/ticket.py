"""Tickets: a network spec, its seed and a packed mask — a whole trained model in a few KB.

The weights are a pure function of ``(spec, seed)``, so a ticket stores one bit
per weight and rebuilds the exact network when loaded. It also stores a hash
of the weights, so a mask is never applied to another network (for example
one drawn by a NumPy whose random streams changed).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from prunetrain._version import __version__
from prunetrain.errors import PrunetrainError, TicketError
from prunetrain.files import check_regular_file
from prunetrain.masks import KeepRule, Mask, check_mask, pack_mask, unpack_mask
from prunetrain.network import MAX_LAYERS, FrozenNetwork, NetworkSpec, check_seed
from prunetrain.npz import Expect, read_entries, write_entries

FORMAT = "prunetrain-ticket"
FORMAT_VERSION = 1


class Ticket:
    """A mask over a frozen network, with what it takes to rebuild that network.

    Parameters
    ----------
    network : FrozenNetwork
        The network the mask applies to.
    mask : list of ndarray
        One boolean ``(fan_in, fan_out)`` array per layer.
    rule : KeepRule
        The keep rule the mask was searched under.
    meta : dict, optional
        JSON-ready facts about how the ticket was made (dataset, method,
        class labels, ...).

    Attributes
    ----------
    written_by : dict or None
        For a loaded ticket, the prunetrain and NumPy versions that wrote the
        file (``None`` for files from before they were recorded, and for a
        ticket not loaded from a file). NumPy's random streams may change
        between its versions, and with them the weights of ``(spec, seed)``.

    Examples
    --------
    >>> import tempfile, os
    >>> net = FrozenNetwork(NetworkSpec((4, 3, 2)), seed=7)
    >>> mask = [np.ones(s, dtype=bool) for s in net.shapes]
    >>> path = os.path.join(tempfile.mkdtemp(), "t.npz")
    >>> Ticket(net, mask, KeepRule(1.0)).save(path).name
    't.npz'
    >>> Ticket.load(path).network.weights_hash == net.weights_hash
    True
    """

    def __init__(
        self, network: FrozenNetwork, mask: Mask, rule: KeepRule, meta: dict | None = None
    ) -> None:
        self.network = network
        self.mask = check_mask(mask, network.shapes)
        self.rule = rule
        self.meta = dict(meta or {})
        self.written_by: dict | None = None

    @property
    def spec(self) -> NetworkSpec:
        return self.network.spec

    @property
    def seed(self) -> int:
        return self.network.seed

    @property
    def keep_fraction(self) -> float:
        """Fraction of weights the mask actually keeps."""
        return sum(int(m.sum()) for m in self.mask) / self.spec.n_weights

    def arrays(self) -> dict[str, np.ndarray]:
        """The entries of the ticket's ``.npz`` file, by name."""
        packed = pack_mask(self.mask)
        return {
            "format": np.array(FORMAT),
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "spec": np.array(json.dumps(self.spec.to_dict(), sort_keys=True)),
            "seed": np.array(self.seed, dtype=np.int64),
            "rule": np.array(json.dumps(self.rule.to_dict(), sort_keys=True)),
            "weights_hash": np.array(self.network.weights_hash),
            "mask": packed,
            "mask_sha256": np.array(hashlib.sha256(packed.tobytes()).hexdigest()),
            "meta": np.array(json.dumps(self.meta, sort_keys=True, allow_nan=False)),
            "written_by": np.array(json.dumps(_writer(), sort_keys=True)),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the ticket to ``path`` (``.npz``) whole or not at all, the same bytes each time."""
        return write_entries(path, self.arrays())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Ticket:
        """Read a ticket, rebuild its network and check the weights hash.

        Nothing is trusted: the file may be at most :data:`MAX_TICKET_BYTES`;
        only the ticket's own entries are read, each checked (stored, small,
        the expected dtype and shape) before its data; the spec, seed, rule,
        ``meta`` (:data:`META_FIELDS`) and ``written_by`` (optional: older
        tickets lack it) are checked for type and range;
        the mask must be the packed bits of exactly the spec's weights. Only
        then is the network rebuilt, so a small file cannot claim a large one.

        Raises
        ------
        TicketError
            The file is missing, too large, damaged, not a ticket, or its weights
            hash does not match the network rebuilt from its spec and seed.
        """
        try:
            path = check_regular_file(path, "ticket")  # a FIFO would block the reading
        except PrunetrainError as e:
            raise TicketError(str(e)) from None
        try:
            fields = read_entries(path, _entries(), MAX_TICKET_BYTES)
            if str(fields["format"]) != FORMAT:
                raise TicketError(f"{path} is not a prunetrain ticket")
            version = int(fields["format_version"])
            if not 1 <= version <= FORMAT_VERSION:
                raise TicketError(
                    f"{path} has ticket format {version}; this prunetrain reads 1 to {FORMAT_VERSION}"
                )
            spec = _parse_spec(str(fields["spec"]))
            seed = check_seed(int(fields["seed"]))
            rule = _parse_rule(str(fields["rule"]))
            rule.check_shapes(spec.shapes)
            meta = parse_meta(str(fields["meta"]))
            packed = fields["mask"]
            if hashlib.sha256(packed.tobytes()).hexdigest() != str(fields["mask_sha256"]):
                raise TicketError(f"{path} is damaged: its mask does not match its checksum")
            mask = unpack_mask(packed, spec.shapes)
            stored_hash = str(fields["weights_hash"])
            written_by = (
                _parse_written_by(str(fields["written_by"])) if "written_by" in fields else None
            )
        except TicketError:
            raise
        except PrunetrainError as e:  # ArchiveError and the checks of spec, seed, rule, meta
            raise TicketError(f"{path} is damaged or not a ticket ({_one_line(e)})") from None
        network = FrozenNetwork(spec, seed)
        if network.weights_hash != stored_hash:
            raise TicketError(
                f"{path} does not match the network rebuilt from its spec and seed "
                f"(weights hash differs): it was made for other weights; {_versions_note(written_by)}"
            )
        ticket = cls(network, mask, rule, meta)
        ticket.written_by = written_by
        return ticket

    def verify(self, network: FrozenNetwork) -> None:
        """Raise :class:`TicketError` unless this ticket's mask belongs to ``network``."""
        if network.weights_hash != self.network.weights_hash:
            raise TicketError(
                f"ticket is for {self.network!r}, not {network!r} (weights hash differs)"
            )

    def __repr__(self) -> str:
        return f"Ticket({self.network!r}, keep={self.keep_fraction:.3f}, rule={self.rule.kind!r})"


#: A ticket file may be at most this large (a 784-4096-4096-10 network's ticket is 2.5 MB).
MAX_TICKET_BYTES = 16 * 2**20
#: Characters allowed in the JSON of the spec, the rule and ``meta``.
MAX_SPEC_CHARS = 4096
MAX_META_CHARS = 1_000_000


def _entries() -> dict:
    """What each entry of a ticket must hold, in reading order (the mask's size follows the spec)."""

    def mask(fields: dict) -> Expect:
        return Expect("bytes", length=(_parse_spec(str(fields["spec"])).n_weights + 7) // 8)

    return {
        "format": Expect("text", 64),
        "format_version": Expect("int"),
        "spec": Expect("text", MAX_SPEC_CHARS),
        "seed": Expect("int"),
        "rule": Expect("text", MAX_SPEC_CHARS),
        "weights_hash": Expect("text", 64),
        "mask_sha256": Expect("text", 64),
        "meta": Expect("text", MAX_META_CHARS),
        "mask": mask,
        "written_by": Expect("text", MAX_SPEC_CHARS, optional=True),  # absent in older tickets
    }


def _parse_json(text: str, what: str):
    """JSON without NaN or infinities; nesting too deep for the parser is a damaged file."""

    def refuse(constant: str):
        raise PrunetrainError(f"its {what} holds {constant}, which is not a finite number")

    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as e:
        raise PrunetrainError(f"its {what} is not valid JSON ({e.msg})") from None
    except RecursionError:
        raise PrunetrainError(f"its {what} is JSON nested too deeply") from None


def _parse_spec(text: str) -> NetworkSpec:
    d = _parse_json(text, "spec")
    if not isinstance(d, dict) or not isinstance(d.get("layer_sizes"), list):
        raise PrunetrainError("its spec is not a network spec with layer_sizes")
    sizes = d["layer_sizes"]
    if not 2 <= len(sizes) <= MAX_LAYERS + 1:
        raise PrunetrainError(
            f"its spec has {len(sizes)} layer sizes; expected 2 to {MAX_LAYERS + 1}"
        )
    for key, kind in (("init", str), ("scale", str), ("activation", str), ("bias", bool)):
        if key in d and not isinstance(d[key], kind):
            raise PrunetrainError(f"its spec's {key} is {d[key]!r}, not a {kind.__name__}")
    return NetworkSpec.from_dict(d)  # checks the sizes and keep strictly


def _parse_rule(text: str) -> KeepRule:
    d = _parse_json(text, "rule")
    if not isinstance(d, dict) or set(d) != {"keep", "kind"}:
        raise PrunetrainError("its rule is not a keep rule with keep and kind")
    return KeepRule.from_dict(d)


def _parse_written_by(text: str) -> dict[str, str]:
    d = _parse_json(text, "written_by")
    if not isinstance(d, dict) or not all(isinstance(v, str) for v in d.values()):
        raise PrunetrainError("its written_by is not an object of version strings")
    return d


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


# --- meta: facts about how a ticket was made ------------------------------------------------


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_scalar(v) -> bool:
    return isinstance(v, (str, bool)) or _is_number(v)


def _is_list_of(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def _is_label_dtype(v) -> bool:
    """A plain dtype string of class labels (``<i8``, ``<U5``, ``object``), nothing that allocates."""
    return isinstance(v, str) and (
        v == "object" or re.fullmatch(r"[<>|=]?(b1|[iuf][1248]|[US]\d{1,6})", v) is not None
    )


def _is_data_source(v) -> bool:
    """``{"name": str}`` for a named dataset, or a file's ``path``, ``resolved`` and ``sha256``."""
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
        return False
    if "sha256" in v:
        return {"path", "resolved"} <= set(v) and re.fullmatch(
            r"[0-9a-f]{64}", v["sha256"]
        ) is not None
    return "name" in v


#: Largest feature scaling factor a ticket may record: float32's largest value.
#: The factors prunetrain writes (1/16, 1/255, one over a feature's spread or
#: standard deviation) stay below it whenever the training spread is at least
#: float32's smallest normal number (1.2e-38); a factor of 1e308 comes from no
#: data. Raw features far outside the training range may still scale beyond
#: float32: ``predict`` refuses those in one line (:func:`prunetrain.api.predict`).
MAX_SCALING_FACTOR = float(np.finfo(np.float32).max)


def _is_scaling(v) -> bool:
    """A :class:`~prunetrain.data.FeatureScaling` as ``to_dict`` writes it, its factors bounded.

    Offsets are finite numbers; factors finite numbers in [0, :data:`MAX_SCALING_FACTOR`].
    """

    def numbers(x, check) -> bool:
        return (_is_number(x) and check(x)) or (
            isinstance(x, list) and all(_is_number(n) and check(n) for n in x)
        )

    return (
        isinstance(v, dict)
        and {"offset", "factor"} <= set(v) <= {"offset", "factor", "clip"}
        and numbers(v["offset"], lambda x: True)
        and numbers(v["factor"], lambda x: 0 <= x <= MAX_SCALING_FACTOR)
        and isinstance(v.get("clip", False), bool)
    )


#: The keys of ``meta`` that prunetrain reads, each with its check and what it must be.
#: Other keys are kept as they are (a ticket may carry facts a newer prunetrain wrote).
#: Add a key here when code starts reading it.
META_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "dataset": (lambda v: isinstance(v, str), "a string"),
    "method": (lambda v: isinstance(v, str), "a string"),
    "estimator": (lambda v: isinstance(v, str), "a string"),
    "seed": (_is_count, "a non-negative integer"),
    "baseline": (lambda v: isinstance(v, bool), "true or false"),
    "classes": (_is_list_of(_is_scalar), "a list of labels (strings or numbers)"),
    "classes_dtype": (_is_label_dtype, "a dtype string such as '<i8'"),
    "feature_names_in": (_is_list_of(lambda x: isinstance(x, str)), "a list of strings"),
    "n_features_in": (_is_count, "a non-negative integer"),
    "params": (lambda v: isinstance(v, dict), "an object"),
    "n_iter": (_is_count, "a non-negative integer"),
    "n_evaluations": (lambda v: _is_number(v) and v >= 0, "a non-negative number"),
    "best_validation_score": (lambda v: v is None or _is_number(v), "a number or null"),
    "loss_curve": (_is_list_of(_is_number), "a list of numbers"),
    "validation_scores": (_is_list_of(_is_number), "a list of numbers"),
    "loss": (lambda v: v is None or _is_number(v), "a number or null"),
    "best_loss": (lambda v: v is None or _is_number(v), "a number or null"),
    "data_source": (
        _is_data_source,
        "an object with a dataset 'name', or a file's 'path', 'resolved' and 'sha256'",
    ),
    "scaling": (
        _is_scaling,
        "an object with numbers (or lists of numbers) 'offset' and 'factor', "
        f"each factor in [0, {MAX_SCALING_FACTOR:.6g}]",
    ),
    "feature_names": (_is_list_of(lambda x: isinstance(x, str)), "a list of strings"),
}


def parse_meta(text: str) -> dict:
    """The ``meta`` JSON of a ticket or weights file, parsed and checked (:func:`check_meta`).

    Raises
    ------
    PrunetrainError
        Not JSON, nested too deeply to parse, NaN or infinities, or a known key mistyped.
    """
    return check_meta(_parse_json(text, "meta"))


def check_meta(meta: object) -> dict:
    """``meta`` if it is a JSON object whose known keys (:data:`META_FIELDS`) are well typed.

    Raises
    ------
    PrunetrainError
        One line naming the first bad key and what it must be.
    """
    if not isinstance(meta, dict):
        raise PrunetrainError(f"its meta is {type(meta).__name__}, not a JSON object")
    for key, (check, must_be) in META_FIELDS.items():
        if key in meta and not check(meta[key]):
            raise PrunetrainError(f"its meta {key!r} is {meta[key]!r:.60}; expected {must_be}")
    return meta


def _writer() -> dict[str, str]:
    """The versions a saved ticket records: the weights of ``(spec, seed)`` depend on them."""
    return {"prunetrain": __version__, "numpy": np.__version__}


def _versions_note(written_by: dict | None) -> str:
    """Which versions wrote a ticket and which read it, for a weights-hash mismatch."""
    now = _writer()
    here = f"this is prunetrain {now['prunetrain']} with NumPy {now['numpy']}"
    if not isinstance(written_by, dict):
        return f"the file predates recording which prunetrain and NumPy wrote it; {here}"
    return (
        f"it was written by prunetrain {written_by.get('prunetrain', '?')} with NumPy "
        f"{written_by.get('numpy', '?')}, {here} (NumPy's random streams may change between versions)"
    )
