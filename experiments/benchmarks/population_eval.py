"""Population evaluation: NumPy reference, Numba backend and torch.bmm on the same masks.

Measures, in one run and interleaved (every round times each contender once),
the seconds per evaluation of a population of P masks on a batch of B
samples, the GFLOP/s that makes (``2·B·Σ fan_in·fan_out`` per mask), and the
machine's fp32 GEMM peak (a 4096² NumPy sgemm). Medians over the rounds.

torch contenders (when torch is installed) are what a PyTorch user would
write: masks held as bool tensors, ``W * M`` materialised for every mask on
every call, then

* ``torch.bmm``: every layer a ``torch.bmm`` (the input batch expanded, not
  copied, over the P masks), loss by ``F.cross_entropy``;
* ``torch, layer 1 as one GEMM``: the same, but the first layer is one
  ``X @ [W⊙M₁ | … | W⊙M_P]`` GEMM, as the backends do.

A second part measures the peak memory (max RSS of a fresh process) of one
evaluation of a large population.

Writes ``experiments/results/population_eval.md`` and a JSON twin.

    python experiments/benchmarks/population_eval.py --arch 784-300-100-10 --population 64 --batch 1024
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from prunetrain.backends import make_backend
from prunetrain.bench import SETTLE_SECONDS, machine_info, measure, random_problem
from prunetrain.provenance import describe_blas

RESULTS = Path(__file__).resolve().parents[1] / "results"


def torch_contenders(network, masks, X, y, device: str = "cpu") -> dict:
    """The two torch contenders as callables returning ``(loss, accuracy)`` (NumPy).

    ``device`` is where torch holds the tensors and computes (``"cuda"`` on a
    GPU, as ``experiments/gpu_check.py`` does); the results come back to the host.
    """
    import torch
    import torch.nn.functional as F

    def tensor(a: np.ndarray):
        return torch.from_numpy(np.array(a)).to(device)

    weights = [tensor(w) for w in network.weights]
    biases = None if network.biases is None else [tensor(b) for b in network.biases]
    bits = [tensor(masks.layer(layer)) for layer in range(len(weights))]
    Xt, yt = tensor(X), tensor(y)
    P, B, last = len(masks), X.shape[0], len(weights) - 1

    def head(z: torch.Tensor):
        loss = F.cross_entropy(z.reshape(P * B, -1), yt.repeat(P), reduction="none")
        acc = (z.argmax(dim=-1) == yt).to(torch.float64).mean(dim=1)
        loss = loss.view(P, B).to(torch.float64).mean(dim=1)
        return loss.cpu().numpy(), acc.cpu().numpy()

    def forward(first_as_one_gemm: bool):
        with torch.inference_mode():
            a = None
            for layer, (w, m) in enumerate(zip(weights, bits)):
                masked = w * m  # (P, fan_in, fan_out) float32
                if layer > 0:
                    z = torch.bmm(a, masked)
                elif first_as_one_gemm:
                    d, h = w.shape
                    z = Xt @ masked.permute(1, 0, 2).reshape(d, P * h)
                    z = z.view(B, P, h).permute(1, 0, 2)
                else:
                    z = torch.bmm(Xt.expand(P, B, -1), masked)
                if biases is not None:
                    z = z + biases[layer]
                a = torch.relu(z) if layer < last else z
            return head(a)

    return {
        "torch.bmm": lambda: forward(False),
        "torch, layer 1 as one GEMM": lambda: forward(True),
    }


def compare(arch: str, population: int, batch: int, repeats: int, seed: int) -> dict:
    network, masks, X, y = random_problem(arch, population, batch, seed)
    contenders = {}
    for name in ("numpy", "numba"):
        backend = make_backend(name, network)
        contenders[name] = lambda b=backend: b.evaluate(masks, X, y)
    machine = machine_info()
    try:
        import torch
    except ImportError:
        print("torch is not installed: no torch.bmm comparison", file=sys.stderr)
        machine["torch"] = None
    else:
        machine["torch"] = torch.__version__
        machine["torch_threads"] = torch.get_num_threads()
        contenders.update(torch_contenders(network, masks, X, y))
    flops = float(network.spec.flops_per_sample() * batch)
    numbers, first = measure(contenders, population, flops, repeats, seed=seed)
    reference = first["numpy"][0]
    for name, row in numbers["contenders"].items():
        row["max_rel_loss_diff_vs_numpy"] = float(np.max(np.abs(first[name][0] / reference - 1)))
    return {
        "arch": network.spec.arch,
        "population": population,
        "batch": batch,
        "repeats": repeats,
        "seed": seed,
        "flops_per_mask_eval": flops,
        "machine": machine,
        **numbers,
    }


def peak_rss_bytes() -> int:
    """This process's peak resident set size (``VmHWM``; ``ru_maxrss`` would carry the parent's over exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_probe(backend_name: str, arch: str, population: int, batch: int, seed: int) -> dict:
    """Peak RSS of this process up to and after one evaluation (run it in a fresh process)."""
    network, masks, X, y = random_problem(arch, population, batch, seed)
    backend = make_backend(backend_name, network)
    backend.evaluate(masks.select(slice(0, 1)), X[:2], y[:2])  # load kernels before measuring
    before = peak_rss_bytes()
    t = time.perf_counter()
    backend.evaluate(masks, X, y)
    seconds = time.perf_counter() - t
    peak = peak_rss_bytes()
    return {
        "backend": backend_name,
        "arch": arch,
        "population": population,
        "batch": batch,
        "max_rss_bytes_before_eval": before,
        "max_rss_bytes": peak,
        "packed_masks_bytes": masks.nbytes(),
        "seconds": seconds,
    }


def compile_probe(arch: str) -> dict:
    """Seconds of the first Numba evaluation in this process, then of the second."""
    network, masks, X, y = random_problem(arch, 2, 8)
    backend = make_backend("numba", network)
    t = time.perf_counter()
    backend.evaluate(masks, X, y)
    first = time.perf_counter() - t
    t = time.perf_counter()
    backend.evaluate(masks, X, y)
    return {"first_call_seconds": first, "second_call_seconds": time.perf_counter() - t}


def run_compile_probes(arch: str) -> dict:
    """First-call seconds of a fresh process with an empty kernel cache, then with the cache it left."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        cmd = [sys.executable, __file__, "--compile-probe", "--arch", arch]
        runs = [
            json.loads(
                subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
            )
            for _ in range(2)
        ]
    return {"cold": runs[0], "cached": runs[1]}


def run_memory_probe(backend_name: str, arch: str, population: int, batch: int, seed: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--memory-probe",
        backend_name,
        "--arch",
        arch,
        "--population",
        str(population),
        "--batch",
        str(batch),
        "--seed",
        str(seed),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def to_markdown(result: dict, command: str) -> str:
    m = result["machine"]
    rows = result["contenders"]
    torch_ref = rows.get("torch.bmm")
    lines = [
        "# Population evaluation: NumPy, Numba, torch.bmm",
        "",
        f"Produced by `{command}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; BLAS {describe_blas(m['blas'])}; "
        f"Python {m['python']}, NumPy {m['numpy']}, Numba {m['numba']}, torch {m['torch']}"
        + (f" ({m['torch_threads']} threads)" if m.get("torch_threads") else "")
        + f". Load average (1 min) before/after the timed rounds: "
        f"{result['load_average'][0]:.2f} / {result['load_average'][1]:.2f}.",
        "",
        f"Arch {result['arch']}, P = {result['population']} masks, B = {result['batch']}: "
        f"{result['flops_per_mask_eval'] / 1e6:.1f} MFLOP per mask evaluation, "
        f"{result['population'] * result['flops_per_mask_eval'] / 1e9:.2f} GFLOP per population. "
        f"Medians over {result['repeats']} interleaved rounds. Measured fp32 GEMM peak "
        f"({result['gemm_size']}² NumPy sgemm): **{result['gemm_peak_gflops']:.1f} GFLOP/s** "
        f"(rounds: {min(result['gemm_peak_all']):.0f}–{max(result['gemm_peak_all']):.0f}).",
        "",
        "| contender | s / population | range s | mask evals / s | GFLOP/s | of peak | vs torch.bmm | first call s | max rel. loss diff vs NumPy |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        speedup = f"{torch_ref['seconds'] / r['seconds']:.2f}×" if torch_ref else "n/a"
        lines.append(
            f"| {name} | {r['seconds']:.4f} | {min(r['seconds_all']):.3f}–{max(r['seconds_all']):.3f} | "
            f"{r['evals_per_second']:.1f} | {r['gflops']:.1f} | "
            f"{r['ratio_to_peak']:.1%} | {speedup} | {r['first_call_seconds']:.3f} | "
            f"{r['max_rel_loss_diff_vs_numpy']:.1e} |"
        )
    lines += [
        "",
        "Each round times the peak GEMM and every contender once, in this order; each call "
        f"starts {SETTLE_SECONDS} s after the previous one ended, because OpenBLAS workers spin "
        "for about 0.13 s after a multi-threaded call and would otherwise take a core from the "
        "next contender. torch.bmm: masks held as bool tensors, `W * M` materialised per call, "
        "every layer a `torch.bmm` (the batch expanded over the masks), `F.cross_entropy`; the "
        "last row does the first layer as one GEMM instead. Range: fastest and slowest round.",
        "",
        "First call: the first evaluation in this process (Numba: loading the kernels "
        "cached on disk, or compiling them on a machine's first run); it is in no other column.",
        "",
    ]
    probe = result.get("numba_compile")
    if probe:
        lines += [
            "Numba kernels, first evaluation (P = 2, B = 8) in a fresh process: "
            f"**{probe['cold']['first_call_seconds']:.2f} s** with an empty cache (JIT compilation), "
            f"**{probe['cached']['first_call_seconds']:.2f} s** in the next process, which loads "
            f"them from the on-disk cache (`cache=True`); a second call takes "
            f"{probe['cached']['second_call_seconds'] * 1e3:.2f} ms.",
            "",
        ]
    for probe in result.get("memory", []):
        lines.append(
            f"Peak memory, {probe['backend']} backend, {probe['arch']}, P = {probe['population']}, "
            f"B = {probe['batch']}: max RSS **{probe['max_rss_bytes'] / 2**30:.2f} GiB** for the whole "
            f"process ({probe['max_rss_bytes_before_eval'] / 2**30:.2f} GiB before the evaluation; "
            f"packed masks {probe['packed_masks_bytes'] / 2**20:.0f} MiB), one evaluation "
            f"{probe['seconds']:.2f} s."
        )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="784-300-100-10")
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--memory-arch", default="784-1000-1000-10", help="architecture of the memory measurement"
    )
    parser.add_argument("--memory-population", type=int, default=256)
    parser.add_argument("--memory-backends", default="numba", help="comma-separated; empty: skip")
    parser.add_argument("--out", type=Path, default=RESULTS / "population_eval.md")
    parser.add_argument("--memory-probe", metavar="BACKEND", help=argparse.SUPPRESS)
    parser.add_argument("--compile-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.compile_probe:
        print(json.dumps(compile_probe(args.arch)))
        return
    if args.memory_probe:
        probe = memory_probe(args.memory_probe, args.arch, args.population, args.batch, args.seed)
        print(json.dumps(probe))
        return

    command = "python " + " ".join(shlex.quote(a) for a in [_relative(sys.argv[0]), *sys.argv[1:]])
    result = compare(args.arch, args.population, args.batch, args.repeats, args.seed)
    result["command"] = command
    result["numba_compile"] = run_compile_probes(args.arch)
    result["memory"] = [
        run_memory_probe(name, args.memory_arch, args.memory_population, args.batch, args.seed)
        for name in filter(None, args.memory_backends.split(","))
    ]
    text = to_markdown(result, command)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _write(args.out, text)
    _write(args.out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


if __name__ == "__main__":
    main()
