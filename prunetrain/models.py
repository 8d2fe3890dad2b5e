"""Loading a saved model: a ticket of a search, or the trained weights of a baseline.

``prunetrain evaluate`` and ``prunetrain predict`` take either file; they are
told apart by content, not by name. Here is the one place that knows both
formats, so that :mod:`prunetrain.api` (the search's face) need not import
:mod:`prunetrain.baselines` to read a model.
"""

from __future__ import annotations

import os

from prunetrain.baselines.weights import MAX_WEIGHTS_BYTES, TrainedWeights
from prunetrain.errors import ArchiveError, TicketError
from prunetrain.files import check_regular_file
from prunetrain.npz import entry_names
from prunetrain.ticket import Ticket


def load_model(path: str | os.PathLike) -> Ticket | TrainedWeights:
    """A ticket, or the trained weights a baseline wrote (``weights.npz``), told apart by content.

    Only the archive's zip directory is read to tell them apart (a
    ``weight_0`` entry: trained weights); then :meth:`Ticket.load` or
    :meth:`TrainedWeights.load` reads it, trusting nothing. A FIFO, a device
    or a folder is refused before it is opened.

    Parameters
    ----------
    path : str or os.PathLike
        A ticket (``ticket.npz``) or a baseline's ``weights.npz``.

    Returns
    -------
    Ticket or TrainedWeights

    Raises
    ------
    PrunetrainError
        The file is missing or not a regular file.
    TicketError
        The file is damaged, or is neither.
    """
    path = check_regular_file(path, "model file")
    try:
        names = entry_names(path, MAX_WEIGHTS_BYTES)
    except ArchiveError as e:
        raise TicketError(f"{path} is damaged or not a ticket or weights file ({e})") from None
    if "weight_0" in names:
        return TrainedWeights.load(path)
    return Ticket.load(path)
