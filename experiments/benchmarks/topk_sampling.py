"""Gumbel-top-k sampling of a generation of masks, against the evaluation of that generation.

The distribution searchers (``pbil``, ``cem``, ``nes``) draw every generation
as the top ``k`` of ``θ + Gumbel`` per layer (:mod:`prunetrain.backends.topk`).
This measures, interleaved and repeated, for a population of P masks of an
architecture at keep 0.5:

* ``argpartition``: the first implementation, ``numpy.random`` keys and one
  ``np.argpartition`` per row (inlined here as the reference it replaced);
* ``reference``: :func:`~prunetrain.backends.topk.gumbel_top_k`, the NumPy
  reference (counter-based uniforms and a partition);
* ``kernels``: the same by the Numba backend's ``gumbel_top_k`` (its kernels);
* ``evaluation``: the Numba backend evaluating P + 2 masks (the samples, the
  mode and the incumbent) on a batch of B samples: what a generation costs
  besides its sampling.

With ``--before DIR`` (a checkout of an earlier prunetrain) it also runs
``prunetrain search --method nes`` from that source and from this one, in
alternation, and reports evaluations per second of each: the end-to-end
effect on a search.

Writes ``experiments/results/topk_sampling.md`` and a JSON twin.

    python experiments/benchmarks/topk_sampling.py --arch 784-300-100-10 --population 32 --batch 256
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from prunetrain.backends import make_backend
from prunetrain.backends.topk import gumbel_top_k
from prunetrain.bench import machine_info, random_problem, time_interleaved
from prunetrain.masks import MaskPopulation
from prunetrain.provenance import describe_blas

RESULTS = Path(__file__).resolve().parents[1] / "results"


def argpartition_sample(theta: np.ndarray, k: int, size: int, rng: np.random.Generator):
    """The sampler this replaced: NumPy keys, then ``argpartition`` of every row."""
    n = len(theta)
    out = np.zeros((size, n), dtype=bool)
    key = rng.random((size, n), dtype=np.float32)
    np.subtract(np.float32(1), key, out=key)
    np.log(key, out=key)
    key *= np.exp(-theta).astype(np.float32)
    idx = np.argpartition(key, n - k, axis=1)[:, n - k :]
    idx += (np.arange(size) * n)[:, None]
    out.reshape(-1)[idx.ravel()] = True
    return out


def search_rate(src: Path, args, seconds: int) -> float:
    """Evaluations per second of one ``prunetrain search --method nes`` run from ``src``."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "prunetrain",
            "search",
            "--dataset",
            args.dataset,
            "--arch",
            args.arch,
            "--method",
            "nes",
            "-p",
            f"population={args.population}",
            "--budget",
            f"{seconds}s",
            "--batch-size",
            str(args.batch),
            "--out",
            tmp,
        ]
        env = {**os.environ, "PYTHONPATH": str(src)}
        # Run from the temporary folder: `python -m` puts the working directory first on the path.
        subprocess.run(cmd, env=env, cwd=tmp, check=True, capture_output=True)
        result = json.loads((Path(tmp) / "result.json").read_text())
    return result["evaluations"] / result["seconds"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="784-300-100-10")
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--before", type=Path, help="an earlier prunetrain checkout to compare")
    parser.add_argument("--dataset", default="fashion-mnist", help="for the --before searches")
    parser.add_argument("--search-seconds", type=int, default=30)
    parser.add_argument("--search-rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "topk_sampling.md")
    args = parser.parse_args(argv)
    command = "python experiments/benchmarks/" + " ".join(
        shlex.quote(a) for a in [Path(__file__).name, *(argv or sys.argv[1:])]
    )

    P = args.population
    network, _, X, y = random_problem(args.arch, P + 2, args.batch)
    shapes = network.spec.shapes
    rng = np.random.default_rng(0)
    thetas = [rng.normal(0.0, 1.0, a * b) for a, b in shapes]  # a distribution mid-search
    counts = [(a * b) // 2 for a, b in shapes]

    def generation(sample):
        return lambda: [sample(t, k, P, rng) for t, k in zip(thetas, counts)]

    backend = make_backend("numba", network)

    def sampler(fast):
        return backend.gumbel_top_k if fast else gumbel_top_k

    Xd, yd = backend.asarray(X), backend.aslabels(y)
    masks = MaskPopulation.from_layers(
        [
            np.concatenate([s, s[:2]]).reshape(P + 2, a, b)
            for s, (a, b) in zip(generation(sampler(True))(), shapes)
        ]
    )
    contenders = {
        "argpartition": generation(argpartition_sample),
        "reference": generation(sampler(False)),
        "kernels": generation(sampler(True)),
        "evaluation": lambda: backend.evaluate(masks, Xd, yd),
    }
    for fn in contenders.values():  # compile, load caches, warm up
        fn()
    times = time_interleaved(contenders, args.repeats)
    med = {name: float(np.median(t)) for name, t in times.items()}

    numbers = {
        "command": command,
        "machine": machine_info(),
        "arch": args.arch,
        "population": P,
        "batch": args.batch,
        "repeats": args.repeats,
        "seconds": med,
        "seconds_all": times,
    }
    if args.before is not None:
        rates = {"before": [], "now": []}
        here = Path(__file__).resolve().parents[2]
        for src in (args.before.resolve(), here):  # compile and cache each source's kernels
            search_rate(src, args, 5)
        for _ in range(args.search_rounds):
            rates["before"].append(search_rate(args.before.resolve(), args, args.search_seconds))
            rates["now"].append(search_rate(here, args, args.search_seconds))
        numbers["nes_evals_per_second"] = rates

    m = numbers["machine"]
    lines = [
        "# Gumbel-top-k sampling against the evaluation of a generation",
        "",
        f"Produced by `{command}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, NumPy {m['numpy']}, "
        f"Numba {m['numba']}; BLAS {describe_blas(m['blas'])}.",
        "",
        f"One generation: P = {P} masks of {args.arch} drawn at keep 0.5, each layer its own "
        f"top-k; evaluation: the Numba backend on P + 2 = {P + 2} masks and a batch of "
        f"B = {args.batch}. Medians of {args.repeats} interleaved rounds (each call 0.2 s "
        "after the previous one).",
        "",
        "| contender | ms per generation | range ms | vs argpartition | vs evaluation |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, t in times.items():
        lines.append(
            f"| {name} | {1e3 * med[name]:.1f} | {1e3 * min(t):.1f}–{1e3 * max(t):.1f} "
            f"| {med['argpartition'] / med[name]:.2f}× | {med[name] / med['evaluation']:.2f} |"
        )
    if "nes_evals_per_second" in numbers:
        rates = numbers["nes_evals_per_second"]
        b, n = float(np.median(rates["before"])), float(np.median(rates["now"]))
        lines += [
            "",
            f"`prunetrain search --dataset {args.dataset} --arch {args.arch} --method nes "
            f"-p population={P} --budget {args.search_seconds}s --batch-size {args.batch}`, "
            f"{args.search_rounds} runs from each source in alternation: **{b:.0f}** "
            f"evaluations/s before ({args.before}), **{n:.0f}** now: **{n / b:.2f}×** "
            f"(runs: {', '.join(f'{r:.0f}' for r in rates['before'])} / "
            f"{', '.join(f'{r:.0f}' for r in rates['now'])}).",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(numbers, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
