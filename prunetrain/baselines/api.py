"""Run a baseline the way ``run_search`` runs a search, and write the same files.

``prunetrain baseline`` is a thin layer over :func:`run_baseline`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from prunetrain import runs
from prunetrain.baselines.base import BaselineResult, make_baseline
from prunetrain.baselines.recipes import overridden
from prunetrain.baselines.weights import TrainedWeights
from prunetrain.data import Dataset
from prunetrain.network import FrozenNetwork
from prunetrain.options import BaselineOptions, FolderOptions, NetworkOptions, takes_options
from prunetrain.provenance import record_provenance
from prunetrain.run_folders import claim_run_folder, held, save_run
from prunetrain.runs import dataset_meta, evaluate_ticket, split_metrics
from prunetrain.threads import one_blas_thread
from prunetrain.ticket import Ticket


@dataclasses.dataclass
class BaselineRun:
    """A finished baseline: its configuration, result, ticket (if it makes one) and final metrics."""

    config: dict
    result: BaselineResult
    ticket: Ticket | None
    metrics: dict[str, dict[str, float]]
    weights: TrainedWeights | None = None
    out: Path | None = None

    @property
    def keep_fraction(self) -> float:
        """Fraction of the architecture's weights the final model uses."""
        r = self.result
        if self.ticket is not None:
            return self.ticket.keep_fraction
        if r.mask is not None:  # imp: trained weights under a mask
            return sum(int(m.sum()) for m in r.mask) / sum(m.size for m in r.mask)
        return 1.0

    def record(self) -> dict:
        """The JSON-ready result record written as ``result.json`` (the keys of a search's, and more).

        ``evaluations`` counts gradient steps (one forward and one backward pass
        of a minibatch), not mask evaluations; ``ticket`` is null for trained
        weights, which are not a ticket of the frozen network. ``recipe`` names
        the recipe the hyperparameters started from (null: none), and
        ``recipe_overrides`` the ones given explicitly over it with another
        value; ``best_epoch`` is the epoch whose model was kept in convergence
        mode (null otherwise: the last).
        """
        r = self.result
        params = self.config["method_params"]
        return {
            "config": self.config,
            **record_provenance(),  # versions, machine and BLAS, git commit, command, time
            "method": self.config["method"],
            "params": self.config["method_params"],
            "recipe": params.get("recipe"),
            "recipe_overrides": overridden(self.config["method"], params),
            "stopped_by": r.stopped_by,
            "best_epoch": r.best_epoch,
            "evaluations": r.steps,
            "sample_forwards": r.sample_forwards,
            "seconds": r.seconds,
            "compile_seconds": 0.0,  # nothing is compiled: NumPy only
            "epochs": r.epochs,
            "keep_fraction": self.keep_fraction,
            "train_accuracy": self.metrics["train"]["accuracy"],
            "val_accuracy": self.metrics.get("val", {}).get("accuracy"),
            "test_accuracy": self.metrics["test"]["accuracy"],
            "metrics": self.metrics,
            "produces": "ticket" if self.ticket is not None else "weights",
            "ticket": "ticket.npz" if self.ticket is not None else None,
            "weights": "weights.npz" if r.weights is not None else None,
            "note": r.note,
            "history": r.history,
        }

    def save(self, out: str | os.PathLike, force: bool = False) -> Path:
        """Write ``result.json``, ``curve.csv``, ``curve.png`` and ``ticket.npz`` or ``weights.npz``.

        Refuses (:func:`~prunetrain.run_folders.check_out`) to replace a finished run unless
        ``force``. They are written as a unit (:func:`~prunetrain.run_folders.save_run`).
        """
        record = self.record()
        history = [
            {k: (np.nan if v is None else v) for k, v in row.items()} for row in record["history"]
        ]
        models = {"ticket.npz": self.ticket, "weights.npz": self.weights}
        return save_run(out, record, history, models, force=force)


def evaluate_result(
    result: BaselineResult, network: FrozenNetwork, ticket: Ticket | None, data: Dataset
) -> dict[str, dict[str, float]]:
    """Loss and accuracy of a baseline's final model on each split."""
    if ticket is not None:
        return evaluate_ticket(ticket, data)
    if result.weights is None:
        return split_metrics(result.logits, data)
    # As `prunetrain evaluate` computes them from weights.npz: the same chunks of samples.
    weights = TrainedWeights(result.weights, result.biases, None, {})
    logits = weights.logits if result.logits is None else result.logits
    return split_metrics(logits, data, layer_sizes=weights.layer_sizes, what="the trained network")


@takes_options(NetworkOptions, BaselineOptions, FolderOptions)
def run_baseline(
    network: NetworkOptions, options: BaselineOptions, folder: FolderOptions
) -> BaselineRun:
    """Run a gradient-trained or data-free baseline on the network a search would get.

    The arguments mean what they mean for :func:`prunetrain.run_search`: the
    same dataset, architecture, init, scale, keep and seeds give the same
    frozen network and the same data splits. The keyword parameters are the
    fields of :class:`~prunetrain.options.NetworkOptions`,
    :class:`~prunetrain.options.BaselineOptions` and
    :class:`~prunetrain.options.FolderOptions`, each checked as its block is made.

    Parameters
    ----------
    method : str
        ``dense``, ``dense-sklearn``, ``edge-popup``, ``imp``, ``random``,
        ``magnitude`` or ``synflow`` (``prunetrain baseline --help``).
    method_params : dict, optional
        The baseline's hyperparameters (``epochs``, ``lr``, ...). ``recipe`` picks
        a named recipe (``{"recipe": "hidden-networks"}`` for edge-popup;
        :data:`~prunetrain.baselines.recipes.RECIPES`) that the other values
        override; ``patience`` trains to convergence on the validation split.
    budget : str, float or Budget, optional
        A cap: training stops once this wall time, or this many gradient steps
        (``"5000evals"``), is spent. By default a trained baseline runs its own
        schedule (``epochs``). Data-free baselines ignore it.
    batch_size : int, optional
        Overrides the baseline's own ``batch_size`` (128 by default).
    seed : int
        Seed of the training (shuffling, score init, tie-breaking) and, by
        default, of the network.
    network_seed : int, optional
        Seed of the frozen weights, if other than ``seed``.
    progress : bool
        Show progress on stderr (a bar on a terminal, plain lines otherwise):
        epochs, training loss, validation accuracy. The test split is scored
        once, after training.
    out : path, optional
        Folder for ``result.json``, the curve, and ``ticket.npz`` (baselines that
        prune the frozen network) or ``weights.npz`` (trained weights).
    runs_dir : path, optional
        Without ``out``: write into ``runs_dir/<run_name(config)>`` (a rerun: ``…-2``).
    force : bool
        Overwrite a finished run in the folder (else an error, before training).
        The folder is held for the whole run, as :func:`prunetrain.run_search` holds it
        (:func:`~prunetrain.run_folders.claim`): another process writing a run there is refused
        at once, and a run that fails leaves no files behind.

    Examples
    --------
    >>> run = run_baseline("digits", "64-32-10", method="magnitude", keep=0.5)
    >>> run.ticket is not None and 0.0 <= run.metrics["test"]["accuracy"] <= 1.0
    True
    """
    baseline = make_baseline(options.method, **options.method_params)
    if options.batch_size is not None and "batch_size" in baseline.param_names():
        baseline.batch_size = options.batch_size
    budget, seed = options.budget, network.seed
    with held(folder):  # the folder is held from before the data is loaded to the last file
        setup = runs.build(network)
        data, rule, network = setup.data, setup.rule, setup.network
        budget_text = None if budget is None else str(budget)
        params = baseline.get_params()
        config = runs.run_config(setup, options.method, params, budget_text, baseline=True)
        with claim_run_folder(config, folder) as out:  # held to the last file
            # One BLAS thread: the same record in a process of its own or on a worker of many.
            with one_blas_thread():
                result = baseline.fit(
                    network, data, rule, seed=seed, budget=budget, progress=options.progress
                )
            meta = {**dataset_meta(data), "method": options.method, "seed": seed, "baseline": True}
            ticket = weights = None
            if type(baseline).produces == "ticket":
                ticket = Ticket(network, result.mask, rule, meta)
            elif result.weights is not None:
                weights = TrainedWeights(result.weights, result.biases, result.mask, meta)
            with one_blas_thread():
                metrics = evaluate_result(result, network, ticket, data)
            finished = BaselineRun(config, result, ticket, metrics, weights=weights, out=out)
            if out is not None:
                finished.save(out, force=folder.force)
    return finished
