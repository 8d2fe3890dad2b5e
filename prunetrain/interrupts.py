"""Signals that stop a search or a comparison: Ctrl-C (SIGINT), SIGTERM and SIGHUP.

Schedulers (Slurm, Kubernetes, ``timeout``) send SIGTERM before they kill a
job, and a closed terminal sends SIGHUP; both are handled as Ctrl-C is. A
search defers the first one to the end of its current step
(:func:`deferred_interrupt`), where its state is whole and can be
checkpointed; a second one stops it at once. A comparison stops at once on
any of them (:func:`interrupting`). Either way the process then exits with
``128 + signal number`` (:func:`exit_code`): 130 for SIGINT, 143 for SIGTERM,
129 for SIGHUP, as a shell reports a process that such a signal ended.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: The signals that stop a run as Ctrl-C does (SIGHUP only where the system has it).
STOPPING = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
#: Those of them that end a process unless it handles them (SIGINT raises KeyboardInterrupt).
TERMINATING = tuple(s for s in STOPPING if s != signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """A :class:`KeyboardInterrupt` that says which signal raised it.

    A subclass, so that everything that stops on Ctrl-C stops on it too.
    """

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def signal_of(interrupt: BaseException) -> int:
    """The signal behind a :class:`KeyboardInterrupt`: its own, or SIGINT's (Ctrl-C)."""
    return int(getattr(interrupt, "signum", signal.SIGINT))


def exit_code(signum: int) -> int:
    """The exit status of a process stopped by ``signum``: ``128 + signum``, as a shell says."""
    return 128 + int(signum)


def _is_default(signum: int, handler) -> bool:
    """Whether ``handler`` is what Python installs for ``signum`` when nobody changed it."""
    if signum == signal.SIGINT:
        return handler is signal.default_int_handler
    return handler is signal.SIG_DFL


class Interrupt:
    """What :func:`deferred_interrupt` yields: whether (and by which signal) a stop was asked."""

    def __init__(self, one_search: bool = False) -> None:
        self.signum: int | None = None
        self.one_search = one_search
        self.late = False  # signals change nothing any more
        self.keep_ignored = False  # ... up to the process's exit

    def is_set(self) -> bool:
        """Whether a stopping signal has arrived (and has not come too late to matter)."""
        return self.signum is not None

    def search_ended(self) -> None:
        """Called by the run loop after its last step. For a block around one search
        (``one_search``), signals from now on change nothing: the search is over, and
        its outputs are being written."""
        if self.one_search:
            self.late = True

    def ignore_until_exit(self) -> None:
        """From now on the signals change nothing, and when the block ends they stay ignored
        instead of getting their default back, so that one arriving while the process exits
        neither kills it nor changes its exit status. For a command whose work is done and
        written, about to exit; the next block of the same process gives them back."""
        self.late = self.keep_ignored = True

    def _handle(self, signum: int, frame) -> None:
        if self.late:
            return
        if self.signum is None:
            self.signum = signum
            return
        raise Interrupted(signum)  # the second one: stop at once


_active: list[tuple[Interrupt, frozenset[int]]] = []
#: The handlers an ended block left ignored (:meth:`Interrupt.ignore_until_exit`) had before.
_left_ignored: dict[int, object] = {}


def _give_back_ignored() -> None:
    """Give back the handlers an earlier command left ignored, if nobody changed them since.

    A process that runs commands one after another (tests, a notebook calling
    ``cli.main``) must not find the next one deaf to Ctrl-C.
    """
    for signum, handler in _left_ignored.items():
        if signal.getsignal(signum) is signal.SIG_IGN:
            signal.signal(signum, handler)
    _left_ignored.clear()


@contextlib.contextmanager
def deferred_interrupt(
    signals: tuple[int, ...] = (signal.SIGINT,), *, one_search: bool = False, search: bool = False
) -> Iterator[Interrupt]:
    """While the block runs, a first stopping signal only marks the :class:`Interrupt` it yields.

    A second one raises :class:`Interrupted` (a ``KeyboardInterrupt``) at once.
    The run loop checks :meth:`Interrupt.is_set` after each step, so an
    interrupted search stops at a step boundary, where its state is whole and
    can be checkpointed.

    Blocks nest: an inner block yields the outer one's :class:`Interrupt` (so
    ``prunetrain search`` defers signals from its start to its summary, and
    the run loop inside sees one that came before its first step) and
    installs handlers only for signals the outer one does not cover.

    Parameters
    ----------
    signals : tuple of int
        The signals to defer. A signal whose handler is not Python's default
        (ignored in a comparison's worker process, or someone else's) is left
        alone, and so is everything outside the main thread.
    one_search : bool
        The block runs one search (``prunetrain search``): once its last step
        is done (:meth:`Interrupt.search_ended`), signals change nothing.
        Ignored by a nested block.
    search : bool
        The block is a search's loop (:func:`prunetrain.search.run`): when it
        ends, however it ends, the search has ended.
    """
    if threading.current_thread() is not threading.main_thread():
        yield Interrupt()  # handlers can be set in the main thread only
        return
    if not _active:
        _give_back_ignored()
    outer, covered = _active[-1] if _active else (Interrupt(one_search), frozenset())
    previous = {}
    for signum in signals:
        if signum in covered:
            continue
        handler = signal.getsignal(signum)
        if _is_default(signum, handler):
            previous[signum] = handler
            signal.signal(signum, outer._handle)
    _active.append((outer, covered | frozenset(previous)))
    try:
        yield outer
    finally:
        if search:
            outer.search_ended()
        _active.pop()
        for signum, handler in previous.items():
            if outer.keep_ignored:
                _left_ignored[signum] = handler
            signal.signal(signum, signal.SIG_IGN if outer.keep_ignored else handler)


@contextlib.contextmanager
def interrupting(signals: tuple[int, ...] = TERMINATING) -> Iterator[None]:
    """While the block runs, each of ``signals`` raises :class:`Interrupted` at once, as Ctrl-C does.

    For work that stops at once rather than at a step boundary (a
    comparison keeps only its finished runs). Signals whose handler is not
    Python's default, and everything outside the main thread, are left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame) -> None:
        raise Interrupted(signum)

    _give_back_ignored()

    previous = {}
    for signum in signals:
        handler = signal.getsignal(signum)
        if _is_default(signum, handler):
            previous[signum] = handler
            signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
