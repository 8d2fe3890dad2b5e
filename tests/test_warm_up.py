"""Kernels compile before the clock starts (issue 19): the budget measures search only."""

import json
import subprocess
import sys
import textwrap
import time

from prunetrain.backends import NumpyBackend
from prunetrain.masks import KeepRule
from prunetrain.problem import Problem
from prunetrain.search import make_searcher, run

COMPILE = 0.5


class SlowFirstCall(NumpyBackend):
    """A backend whose first evaluation takes COMPILE seconds longer, as a JIT compile does."""

    name = "numpy"

    def evaluate(self, population, X, y, w=None):
        if not getattr(self, "compiled", False):
            time.sleep(COMPILE)
            self.compiled = True
        return super().evaluate(population, X, y, w)


def test_compilation_is_outside_a_wall_time_budget(small_net, digits, caplog):
    problem = Problem(small_net, digits, KeepRule(0.5), backend=SlowFirstCall(small_net))
    with caplog.at_level("INFO", logger="prunetrain"):
        result = run(problem, make_searcher("random"), budget=0.6, seed=0)
    assert result.compile_seconds >= COMPILE
    assert result.history[0]["seconds"] < COMPILE / 2  # the first validation did not wait
    assert 0.6 <= result.seconds < 0.6 + COMPILE
    assert result.evaluations > 0
    assert not caplog.records  # under a second: nothing to say


def test_compile_time_is_reported_in_result_json(tmp_path):
    from prunetrain import run_search

    run_search("digits", "64-8-10", method="random", budget="10evals", out=tmp_path)
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["compile_seconds"] >= 0 and "compile_seconds" not in record["config"]


def test_no_kernel_compiles_inside_the_budget():
    """In a fresh process, searches of every family compile nothing after the warm-up."""
    script = textwrap.dedent(
        """
        import numba
        from prunetrain.backends.numba import (
            flip_kernels, hebbian_kernels, numba_backend, screen_kernels, topk_kernels,
        )
        from prunetrain.backends import warm_up
        from prunetrain.data import load_dataset
        from prunetrain.masks import KeepRule
        from prunetrain.network import FrozenNetwork, NetworkSpec
        from prunetrain.problem import Problem
        from prunetrain.search import make_searcher, run

        def signatures():
            return {
                f"{m.__name__}.{name}": len(f.signatures)
                for m in (numba_backend, flip_kernels, screen_kernels, topk_kernels, hebbian_kernels)
                for name, f in vars(m).items()
                if isinstance(f, numba.core.registry.CPUDispatcher)
            }

        data = load_dataset("digits")
        for init in ("signed_constant", "kaiming_normal"):
            for arch in ((64, 16, 10), (64, 16, 8, 10), (64, 12, 8, 8, 10)):
                net = FrozenNetwork(NetworkSpec(arch, init=init), 0)
                for method in ("accumulate", "steepest", "nes", "ga", "probe", "hebbian"):
                    problem = Problem(net, data, KeepRule(0.5), backend="numba", batch_size=64)
                    warm_up(problem.backend, problem.X_train, problem.y_train)
                    before = signatures()
                    run(problem, make_searcher(method), "30evals", seed=0)
                    after = signatures()
                    new = {k: after[k] - before[k] for k in after if after[k] != before[k]}
                    assert not new, (init, arch, method, new)
        kernels = ("_expand_wide", "_output_gains", "_hidden_gains", "_last_hidden_gains_signed",
                   "_two_below_gains", "counter_uniforms", "top_k_rows", "_output_responses",
                   "_last_hidden_responses", "_two_below_responses", "_first_relu_delta",
                   "_relu_delta", "_row_losses", "_winners")
        compiled = {k.split(".")[-1] for k, n in signatures().items() if n}
        assert compiled >= set(kernels), sorted(set(kernels) - compiled)
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
