"""True resume: a search interrupted and resumed from its checkpoint returns the uninterrupted ticket.

Every registered searcher is covered (``SEARCHERS`` is iterated), so one added
later is tested without a line here.
"""

import signal

import pytest

from prunetrain.errors import PrunetrainError
from prunetrain.interrupts import STOPPING, deferred_interrupt
from prunetrain.masks import KeepRule
from prunetrain.network import FrozenNetwork, NetworkSpec
from prunetrain.problem import Problem
from prunetrain.search import SEARCHERS, make_searcher, run
from prunetrain.search.checkpoint import Checkpoint, read_checkpoint
from prunetrain.ticket import Ticket

BUDGET = 160  # evaluations
RULE = KeepRule(0.5)


def make_problem(digits):
    net = FrozenNetwork(NetworkSpec((64, 10, 10)), 5)
    return Problem(net, digits, RULE, backend="numpy", batch_size=128, seed=3)


def search(digits, method, params=None, **kwargs):
    problem = make_problem(digits)
    searcher = make_searcher(method, **(params or {})) if "resume" not in kwargs else None
    result = run(problem, searcher, f"{BUDGET}evals", seed=11, validation_interval=400, **kwargs)
    return problem, result


def ticket_bytes(problem, result, tmp_path, name) -> bytes:
    ticket = Ticket(problem.network, result.mask, RULE, {"method": result.method})
    return ticket.save(tmp_path / f"{name}.npz").read_bytes()


def without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def interrupt_by_signal(at: float, signum: int = signal.SIGINT):
    """A callback that delivers a real signal to this process once ``at`` evaluations are spent."""
    sent = []

    def callback(row, mask):
        if not sent and row["evaluations"] >= at:
            sent.append(row["evaluations"])
            signal.raise_signal(signum)

    return callback, sent


@pytest.mark.parametrize(
    "method, params", [(m, None) for m in sorted(SEARCHERS)] + [("probe", {"select": "last"})]
)
def test_interrupted_and_resumed_search_gives_the_uninterrupted_ticket(
    digits, tmp_path, method, params
):
    problem, whole = search(digits, method, params)
    assert whole.stopped_by in ("budget", "finished")
    expected = ticket_bytes(problem, whole, tmp_path, "whole")

    # Ctrl-C at half the budget: the step ends, a checkpoint is written, the search returns.
    path = tmp_path / "checkpoint.npz"
    callback, sent = interrupt_by_signal(whole.evaluations / 2)
    _, cut = search(
        digits, method, params, callbacks=[callback], checkpoint=Checkpoint(path, every=3600)
    )
    assert sent and cut.stopped_by == "interrupted" and cut.evaluations < whole.evaluations
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    _, state = read_checkpoint(path)
    problem, resumed = search(digits, method, resume=state, checkpoint=Checkpoint(path))
    assert resumed.stopped_by == whole.stopped_by and resumed.method == method
    assert resumed.evaluations == whole.evaluations
    assert resumed.last_step == whole.last_step
    assert resumed.budget_overshoot == whole.budget_overshoot
    assert without_seconds(resumed.history) == without_seconds(whole.history)
    assert ticket_bytes(problem, resumed, tmp_path, "resumed") == expected


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("method", sorted(SEARCHERS))
def test_sigterm_and_sighup_interrupt_like_ctrl_c_and_resume_to_the_same_ticket(
    digits, tmp_path, method, signum
):
    """Under prunetrain search's handlers (deferred_interrupt of all three signals)."""
    problem, whole = search(digits, method)
    expected = ticket_bytes(problem, whole, tmp_path, "whole")
    path = tmp_path / "checkpoint.npz"
    callback, sent = interrupt_by_signal(whole.evaluations / 2, signum)
    with deferred_interrupt(STOPPING):
        _, cut = search(digits, method, callbacks=[callback], checkpoint=Checkpoint(path, 3600))
    assert sent and cut.stopped_by == "interrupted" and cut.signal == signum
    assert cut.evaluations < whole.evaluations
    assert signal.getsignal(signum) is signal.SIG_DFL  # given back
    _, state = read_checkpoint(path)
    problem, resumed = search(digits, method, resume=state)
    assert resumed.signal is None and without_seconds(resumed.history) == without_seconds(
        whole.history
    )
    assert ticket_bytes(problem, resumed, tmp_path, "resumed") == expected


def test_a_second_signal_stops_at_once_and_says_which(digits):
    def twice(row, mask):
        if row["evaluations"] >= 40:
            signal.raise_signal(signal.SIGTERM)  # the first only marks the stop
            signal.raise_signal(signal.SIGTERM)  # the second raises here, mid-callback

    with deferred_interrupt(STOPPING):
        _, cut = search(digits, "random", callbacks=[twice])
    assert cut.stopped_by == "interrupted" and cut.signal == signal.SIGTERM


@pytest.mark.parametrize("method", sorted(SEARCHERS))
def test_a_hard_interrupt_resumes_from_the_last_periodic_checkpoint(digits, tmp_path, method):
    problem, whole = search(digits, method)
    expected = ticket_bytes(problem, whole, tmp_path, "whole")

    # KeyboardInterrupt in the middle of a step (as a second Ctrl-C): the searcher's state
    # is half-updated, so only the checkpoint of the last step boundary can be resumed.
    path = tmp_path / "checkpoint.npz"
    problem = make_problem(digits)
    next_batch = problem.next_batch

    def interrupting_next_batch():
        if problem.n_evaluations >= whole.evaluations / 2:
            problem.next_batch = next_batch
            raise KeyboardInterrupt
        return next_batch()

    problem.next_batch = interrupting_next_batch
    cut = run(
        problem, make_searcher(method), f"{BUDGET}evals", seed=11, validation_interval=400,
        checkpoint=Checkpoint(path, every=0),
    )  # fmt: skip
    assert cut.stopped_by == "interrupted" and cut.evaluations < whole.evaluations
    _, state = read_checkpoint(path)
    problem, resumed = search(digits, method, resume=state)
    assert without_seconds(resumed.history) == without_seconds(whole.history)
    assert ticket_bytes(problem, resumed, tmp_path, "resumed") == expected


def test_time_budget_resume_counts_the_time_already_used(digits, tmp_path):
    path = tmp_path / "c.npz"
    problem = make_problem(digits)
    cut = run(
        problem, make_searcher("random"), "60s", validation_interval=1,
        callbacks=[
            lambda row, mask: row["evaluations"] >= 100 and signal.raise_signal(signal.SIGINT)
        ],
        checkpoint=Checkpoint(path),
    )  # fmt: skip
    assert cut.stopped_by == "interrupted"
    _, state = read_checkpoint(path)
    resumed = run(make_problem(digits), None, f"{cut.seconds + 0.3}s", resume=state)
    assert resumed.stopped_by == "budget"
    assert resumed.seconds >= cut.seconds + 0.3 and resumed.evaluations > cut.evaluations
    assert resumed.history[0]["evaluations"] == cut.history[0]["evaluations"]


def test_run_needs_a_searcher_or_a_state(digits):
    with pytest.raises(PrunetrainError, match="not both"):
        run(make_problem(digits), None, "10evals")


class Unpicklable(SEARCHERS["random"]):
    """A searcher breaking the protocol: a closure as an attribute."""

    name = "test-closure"

    def setup(self, problem, rng, init_mask=None):
        super().setup(problem, rng, init_mask)
        self.score = lambda loss: -loss


class HoldsASet(SEARCHERS["random"]):
    name = "test-set"

    def setup(self, problem, rng, init_mask=None):
        super().setup(problem, rng, init_mask)
        self.seen = {1, 2}


class Unregistered(SEARCHERS["random"]):
    """A subclass of a registered searcher, itself not registered: it cannot be rebuilt."""


@pytest.mark.parametrize(
    "cls, why",
    [
        (Unpicklable, "state['searcher'].score is a builtins.function"),
        (HoldsASet, "state['searcher'].seen is a builtins.set"),
        (Unregistered, "state['searcher'] is a test_checkpoint.Unregistered"),
    ],
)
def test_a_searcher_that_is_not_data_warns_and_runs_without_checkpoints(
    digits, tmp_path, monkeypatch, cls, why
):
    if cls is not Unregistered:
        monkeypatch.setitem(SEARCHERS, cls.name, cls)
    path = tmp_path / "c.npz"
    with pytest.warns(UserWarning, match="cannot be checkpointed") as warned:
        result = run(make_problem(digits), cls(), "40evals", checkpoint=Checkpoint(path))
    assert why in str(warned[0].message)
    assert result.stopped_by == "budget" and not path.exists()
