"""Tickets: a network spec, its seed and a packed mask — a whole trained model in a few KB.

The weights are a pure function of ``(spec, seed)``, so a ticket stores one bit
per weight and rebuilds the exact network when loaded. It also stores a hash
of the weights, so a mask is never applied to another network (for example
one drawn by a NumPy whose random streams changed).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

import prunetrain
from prunetrain.errors import PrunetrainError, TicketError
from prunetrain.files import atomic_write
from prunetrain.masks import KeepRule, Mask, check_mask, pack_mask, unpack_mask
from prunetrain.network import FrozenNetwork, NetworkSpec

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

    def save(self, path: str | os.PathLike) -> Path:
        """Write the ticket to ``path`` (``.npz``) whole or not at all."""
        packed = pack_mask(self.mask)
        arrays = {
            "format": np.array(FORMAT),
            "format_version": np.array(FORMAT_VERSION),
            "spec": np.array(json.dumps(self.spec.to_dict(), sort_keys=True)),
            "seed": np.array(self.seed, dtype=np.int64),
            "rule": np.array(json.dumps(self.rule.to_dict(), sort_keys=True)),
            "weights_hash": np.array(self.network.weights_hash),
            "mask": packed,
            "mask_sha256": np.array(hashlib.sha256(packed.tobytes()).hexdigest()),
            "meta": np.array(json.dumps(self.meta, sort_keys=True, allow_nan=False)),
            "written_by": np.array(json.dumps(_writer(), sort_keys=True)),
        }
        return atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Ticket:
        """Read a ticket, rebuild its network and check the weights hash.

        Raises
        ------
        TicketError
            The file is missing, damaged, not a ticket, or its weights hash does
            not match the network rebuilt from its spec and seed.
        """
        path = Path(path)
        if not path.is_file():
            raise TicketError(f"no ticket at {path}")
        try:
            with np.load(path, allow_pickle=False) as f:
                fields = {k: f[k] for k in f.files}
            if str(fields["format"]) != FORMAT:
                raise TicketError(f"{path} is not a prunetrain ticket")
            if int(fields["format_version"]) > FORMAT_VERSION:
                raise TicketError(
                    f"{path} has ticket format {int(fields['format_version'])}; "
                    f"this prunetrain reads up to {FORMAT_VERSION}"
                )
            spec = NetworkSpec.from_dict(json.loads(str(fields["spec"])))
            seed = int(fields["seed"])
            rule = KeepRule.from_dict(json.loads(str(fields["rule"])))
            meta = json.loads(str(fields["meta"]))
            packed = np.asarray(fields["mask"], dtype=np.uint8)
            if hashlib.sha256(packed.tobytes()).hexdigest() != str(fields["mask_sha256"]):
                raise TicketError(f"{path} is damaged: its mask does not match its checksum")
            mask = unpack_mask(packed, spec.shapes)
            stored_hash = str(fields["weights_hash"])
            written_by = json.loads(str(fields["written_by"])) if "written_by" in fields else None
        except TicketError:
            raise
        except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile) as e:
            # PrunetrainError is a ValueError: a bad spec inside also lands here.
            detail = e if isinstance(e, PrunetrainError) else type(e).__name__
            raise TicketError(f"{path} is damaged or not a ticket ({detail})") from None
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


def _writer() -> dict[str, str]:
    """The versions a saved ticket records: the weights of ``(spec, seed)`` depend on them."""
    return {"prunetrain": prunetrain.__version__, "numpy": np.__version__}


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
