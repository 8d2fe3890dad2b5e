"""Exact incremental flip evaluation against full forward re-evaluation of the same flips.

For each layer of the network, the same K candidate flips of one random mask
are evaluated on one batch of B Fashion-MNIST (or random) samples in two ways:

* incremental: ``backend.flip_gains`` on the cached activations (Numba kernels);
* full: masks, each the current mask with one flip, evaluated by the
  backend's population forward (the fastest full path, first layer as one GEMM
  over 64 masks), and one mask at a time (what re-evaluating a flip naively costs).

Both give the loss after each flip; the script checks they agree and reports
candidates per second, the speed-up, and medians over repeats.

    python experiments/benchmarks/flip_eval.py --arch 784-300-100-10 --batch 1024
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from prunetrain.backends import make_backend
from prunetrain.data import load_dataset
from prunetrain.errors import PrunetrainError
from prunetrain.masks import KeepRule, MaskPopulation, random_mask
from prunetrain.network import FrozenNetwork, NetworkSpec, parse_arch

RESULTS = Path(__file__).resolve().parents[1] / "results"


def batch_of(arch, batch: int, rng):
    if arch[0] == 784:
        try:
            data = load_dataset("fashion-mnist")
            index = rng.choice(len(data.y_train), batch, replace=False)
            return data.X_train[index], data.y_train[index], "fashion-mnist"
        except PrunetrainError:
            pass
    return (
        rng.random((batch, arch[0]), dtype=np.float32),
        rng.integers(0, arch[-1], batch),
        "random",
    )


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="784-300-100-10")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument(
        "--candidates", type=int, nargs="*", help="K per layer (default 2000, 2000, 2000 capped)"
    )
    parser.add_argument(
        "--full", type=int, default=64, help="flipped masks evaluated by full forward"
    )
    parser.add_argument("--backend", default="numba")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS / "flip_eval"))
    args = parser.parse_args(argv)
    command = "python experiments/benchmarks/flip_eval.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )

    arch = parse_arch(args.arch)
    rng = np.random.default_rng(0)
    net = FrozenNetwork(NetworkSpec(arch), 0)
    backend = make_backend(args.backend, net)
    mask = random_mask(net.shapes, KeepRule(0.5), rng)
    X, y, source = batch_of(arch, args.batch, rng)
    state = backend.flip_state(mask, backend.asarray(X), backend.aslabels(y))
    rows_out = []
    for layer, (a, b) in enumerate(net.shapes):
        k = min(a * b, (args.candidates or [2000] * len(net.shapes))[layer])
        flat = rng.choice(a * b, size=k, replace=False)
        rows, cols = np.divmod(flat, b)
        backend.flip_gains(state, layer, rows[:2], cols[:2])  # compile outside the timing
        gains = backend.flip_gains(state, layer, rows, cols)
        t_inc = median_time(lambda: backend.flip_gains(state, layer, rows, cols), args.repeats)  # noqa: B023

        m = min(args.full, k)
        flipped = []
        for i in range(m):
            f = [x.copy() for x in mask]
            f[layer][rows[i], cols[i]] ^= True
            flipped.append(f)
        population = MaskPopulation.from_masks(flipped, net.shapes)
        Xd, yd = backend.asarray(X), backend.aslabels(y)
        losses, _ = backend.evaluate(population, Xd, yd)
        t_full = median_time(lambda: backend.evaluate(population, Xd, yd), args.repeats)  # noqa: B023
        singles = [population.select(slice(i, i + 1)) for i in range(min(m, 16))]
        t_single = median_time(
            lambda: [backend.evaluate(p, Xd, yd) for p in singles],  # noqa: B023
            args.repeats,
        ) / len(singles)
        # float32 population forward vs float64 incremental: agree to float32 precision.
        err = float(np.max(np.abs(losses - (state.loss + gains[:m]))))
        inc_rate, full_rate, single_rate = k / t_inc, m / t_full, 1 / t_single
        rows_out.append(
            {
                "layer": layer,
                "shape": f"{a}x{b}",
                "candidates": k,
                "incremental_per_s": inc_rate,
                "full_forward_per_s": full_rate,
                "speedup": inc_rate / full_rate,
                "single_forward_per_s": single_rate,
                "speedup_vs_single": inc_rate / single_rate,
                "max_abs_loss_difference": err,
            }
        )
        print(
            f"layer {layer} ({a}x{b}): {inc_rate:10.0f} flips/s incremental, "
            f"{full_rate:7.1f} /s population forward ({inc_rate / full_rate:5.0f}x), "
            f"{single_rate:7.1f} /s single forward ({inc_rate / single_rate:5.0f}x), max |Δloss| {err:.1e}",
            flush=True,
        )
    result = {
        "command": command,
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "backend": backend.name,
        "arch": args.arch,
        "batch": args.batch,
        "data": source,
        "repeats": args.repeats,
        "layers": rows_out,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Exact flip evaluation vs full forward re-evaluation",
        "",
        f"`{command}`",
        "",
        f"{args.arch}, B = {args.batch} ({source} samples), backend {backend.name}, "
        f"median of {args.repeats} repeats; incremental gains are float64, the full forward float32.",
        "",
        "| layer | shape | candidates | incremental flips/s | population forward flips/s | speed-up | single-mask forward flips/s | speed-up | max abs loss difference |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows_out:
        lines.append(
            f"| {r['layer']} | {r['shape']} | {r['candidates']} | {r['incremental_per_s']:.0f} | "
            f"{r['full_forward_per_s']:.1f} | {r['speedup']:.0f}× | {r['single_forward_per_s']:.1f} | "
            f"{r['speedup_vs_single']:.0f}× | {r['max_abs_loss_difference']:.1e} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    main()
