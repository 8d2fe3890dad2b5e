"""Does `evolution`'s confirmation cost speed? Evaluations and generations per second, alternating.

    python experiments/benchmarks/evolution_confirm_speed.py --dataset digits \\
        --arch 64-256-256-10 --seconds 15 --repeats 3

runs ``evolution`` with ``confirm=False`` and ``confirm=True`` in turn,
``--repeats`` times each, on the same network and batch schedule, and prints
the medians (the machine is shared: alternating runs see the same load).
"""

from __future__ import annotations

import argparse
import shlex
import sys

import numpy as np

from prunetrain.backends import make_backend
from prunetrain.data import load_dataset
from prunetrain.masks import KeepRule
from prunetrain.network import FrozenNetwork, NetworkSpec
from prunetrain.problem import Problem
from prunetrain.runs import resolve_arch
from prunetrain.search import make_searcher, run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--arch", default="64-256-256-10")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    print(
        "python experiments/benchmarks/evolution_confirm_speed.py "
        + shlex.join(sys.argv[1:] if argv is None else argv)
    )
    data = load_dataset(args.dataset)
    sizes = resolve_arch(args.arch, data)
    rates: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for _ in range(args.repeats):
        for confirm in (False, True):
            net = FrozenNetwork(NetworkSpec(sizes, keep=0.5), 0)
            problem = Problem(
                net,
                data,
                KeepRule(0.5),
                make_backend("auto", net),
                batch_size=args.batch_size,
                seed=0,
            )
            searcher = make_searcher("evolution", confirm=confirm)
            result = run(problem, searcher, f"{args.seconds}s", seed=0)
            rates[confirm].append(
                (result.evaluations / result.seconds, searcher.generations / result.seconds)
            )
    for confirm, runs in rates.items():
        r = np.array(runs)
        print(
            f"confirm={confirm}: {np.median(r[:, 0]):.0f} evaluations/s, "
            f"{np.median(r[:, 1]):.0f} generations/s (median of {len(r)}; "
            f"evaluations/s of each run: {', '.join(f'{x:.0f}' for x in r[:, 0])})"
        )


if __name__ == "__main__":
    main()
