"""Results do not depend on thread counts: BLAS on one thread, work split by cores."""

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from prunetrain.search import SEARCHERS
from prunetrain.threads import cpu_cores, one_blas_thread

ONE_THREAD = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

# Runs every registered searcher with one seed and evaluation budget; prints, per method,
# the SHA-256 of its ticket file and the losses of its history.
SEARCH_ALL = """
import hashlib, json, sys
from pathlib import Path
import numba
from threadpoolctl import threadpool_info
from prunetrain.api import run_search
from prunetrain.search import SEARCHERS

out = Path(sys.argv[1])
blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
found = {"threads": [numba.get_num_threads(), *blas]}
for name in sorted(SEARCHERS):
    run = run_search("digits", "64-48-10", method=name, budget="150evals", seed=3)
    path = run.ticket.save(out / f"{name}.npz")
    found[name] = {
        "ticket": hashlib.sha256(path.read_bytes()).hexdigest(),
        "backend": run.config["backend"],
        "history": [[r["evaluations"], r["train_loss"], r["val_loss"]] for r in run.result.history],
    }
print(json.dumps(found))
"""


def blas_threads() -> set[int]:
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_one_blas_thread_is_counted_across_threads():
    before = blas_threads()
    seen = []
    inside, release = threading.Event(), threading.Event()

    def hold():
        with one_blas_thread():
            seen.append(blas_threads())
            inside.set()
            release.wait(10)

    with one_blas_thread():  # this thread takes and releases the cap first
        assert blas_threads() <= {1}
    assert blas_threads() == before
    # Another thread can cap it next (threadpoolctl lets one thread at a time set OpenBLAS).
    other = threading.Thread(target=hold)
    other.start()
    inside.wait(10)
    with one_blas_thread():
        with one_blas_thread():  # nested
            assert blas_threads() <= {1}
    # This thread left, the other still holds it: BLAS stays on one thread.
    assert blas_threads() <= {1}
    release.set()
    other.join()
    assert seen == [blas_threads() and {1}]
    assert blas_threads() == before  # the last to leave (the other thread) restored it


@pytest.mark.slow
@pytest.mark.skipif(cpu_cores() < 2, reason="one core: the default is one thread already")
def test_every_searcher_gives_the_same_ticket_with_one_thread_and_with_the_default(tmp_path):
    # One process per thread setting (they are read at import), each running every searcher.
    found = {}
    for setting, extra in (("one", ONE_THREAD), ("default", {})):
        env = {k: v for k, v in os.environ.items() if k not in ONE_THREAD} | extra
        (tmp_path / setting).mkdir()
        done = subprocess.run(
            [sys.executable, "-c", SEARCH_ALL, str(tmp_path / setting)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        found[setting] = json.loads(done.stdout)
    assert set(found["one"].pop("threads")) == {1}
    assert min(found["default"].pop("threads")) > 1, "the default is one thread here"
    assert sorted(found["one"]) == sorted(SEARCHERS)
    for name in SEARCHERS:
        one, default = found["one"][name], found["default"][name]
        assert one["ticket"] == default["ticket"], name
        assert one["history"] == default["history"], name  # the very same floats, too
    assert np.isfinite([row[2] for v in found["one"].values() for row in v["history"]]).all()


def test_parallel_threads_caps_numba_and_lifts_the_openmp_cap():
    import numba

    from prunetrain.threads import parallel_threads

    before = numba.get_num_threads()
    openmp = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"]
    try:
        with parallel_threads(1):
            assert numba.get_num_threads() == 1
            inside = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"]
            assert all(n == 1 for n in inside)
        assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"] == openmp
    finally:
        numba.set_num_threads(before)
