"""Named training recipes of the gradient baselines: the published settings, selectable by name.

A claim that a search matches gradient training holds only against baselines
trained at their own published recipe, or to convergence (DESIGN.md, "Comparisons
that are fair"). A recipe is a named set of hyperparameters; a baseline built
with ``recipe=NAME`` (:func:`~prunetrain.baselines.make_baseline`, ``-p recipe=NAME``,
``recipe = "NAME"`` in a comparison config) starts from them, and any hyperparameter
given explicitly beside the recipe overrides it. The recipe's name stays among the
baseline's hyperparameters, so the run's record names it, and
:func:`overridden` says which of its values were changed.

Two kinds of recipe:

- a **published** recipe: the settings of a reference implementation, cited in
  its ``source``;
- ``converge``: train until validation accuracy has not improved for
  ``patience`` epochs (at most ``epochs``), then keep the best epoch's model,
  as scikit-learn's ``MLPClassifier(early_stopping=True)`` does, with the
  optimizer of the method's published recipe. The learning rate is constant:
  a cosine schedule needs a known end, and here the data decides the end.
  ``patience = 10`` and at most 200 epochs are ``MLPClassifier``'s own
  defaults (``n_iter_no_change``, ``max_iter``). An epoch counts as an
  improvement when its validation accuracy is strictly above the best so far
  (at least one more sample right; scikit-learn asks for ``tol = 1e-4`` more,
  which is less than one sample of a validation split under 10 000).

A recipe sets training hyperparameters only. The network it assumes is given by
the run's options, and their defaults are the recipes' networks: hidden-networks'
FC nets are signed-constant with the fan scaled by the keep fraction
(``--init signed_constant --scale keep``, the defaults).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping

from prunetrain.errors import PrunetrainError
from prunetrain.hyperparams import Choice

#: The name of every method's convergence recipe.
CONVERGE = "converge"
#: Epochs without a better validation accuracy before a ``converge`` run stops
#: (scikit-learn's ``n_iter_no_change``).
CONVERGE_PATIENCE = 10
#: At most this many epochs in a ``converge`` run (scikit-learn's ``max_iter``).
CONVERGE_MAX_EPOCHS = 200


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A named set of a baseline's hyperparameters.

    Attributes
    ----------
    name : str
        What ``recipe=`` takes.
    method : str
        The baseline it is for.
    params : Mapping
        The hyperparameters it sets.
    source : str
        Where the values come from (a file of a public repository, or how they were chosen).
    """

    name: str
    method: str
    params: Mapping[str, object]
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", types.MappingProxyType(dict(self.params)))


# allenai/hidden-networks, configs/smallscale/fc/fc_sc_unsigned.yml (and fc_usc_unsigned.yml,
# the same but unscaled): arch FC (784-300-100-10, no biases, no batch norm), optimizer sgd,
# lr 0.1, lr_policy cosine_lr, epochs 100, weight_decay 0.0001, momentum 0.9, batch_size 128,
# init signed_constant, scale_fan True. Scores start as PyTorch's kaiming_uniform_(a=sqrt(5)),
# bound 1/sqrt(fan_in) (utils/conv_type.py): our "kaiming_uniform".
_HIDDEN_NETWORKS = {
    "epochs": 100,
    "batch_size": 128,
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "schedule": "cosine",
    "score_init": "kaiming_uniform",
    "patience": None,
}
# facebookresearch/open_lth, models/mnist_lenet.py, default_hparams() of mnist_lenet_300_100:
# batch_size 128, optimizer_name sgd, lr 0.1, training_steps 40ep; TrainingHparams'
# defaults (foundations/hparams.py): momentum 0.0, no milestone_steps (a constant rate),
# weight_decay None. Pruning: pruning_fraction 0.2 per round, rewinding to init (the lottery
# branch's default). open_lth prunes globally and leaves the output layer unpruned
# (pruning_layers_to_ignore='fc.weight'); ours prunes under the run's keep rule, every layer.
_LOTTERY_TICKET = {
    "epochs": 40,
    "batch_size": 128,
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.0,
    "weight_decay": 0.0,
    "schedule": "constant",
    "patience": None,
}
_TO_CONVERGENCE = {
    "epochs": CONVERGE_MAX_EPOCHS,
    "schedule": "constant",
    "patience": CONVERGE_PATIENCE,
}
_CONVERGE_SOURCE = (
    "until validation accuracy has not improved for {patience} epochs (at most {epochs}), "
    "keeping the best epoch (scikit-learn MLPClassifier(early_stopping=True)'s "
    "n_iter_no_change and max_iter), with the {of} recipe's optimizer at a constant rate"
)

_HN = "allenai/hidden-networks configs/smallscale/fc/fc_sc_unsigned.yml"
_LT = "facebookresearch/open_lth models/mnist_lenet.py (mnist_lenet_300_100 default_hparams)"
_SOURCES = {
    "hidden-networks": _HN + " (signed-constant init: the run's --init signed_constant)",
    "lottery-ticket": _LT,
}


def _converge(of: str, published: dict) -> tuple[dict, str]:
    params = {**published, **_TO_CONVERGENCE}
    source = _CONVERGE_SOURCE.format(patience=CONVERGE_PATIENCE, epochs=CONVERGE_MAX_EPOCHS, of=of)
    return params, source


def _recipes() -> dict[str, dict[str, Recipe]]:
    table = {
        "edge-popup": {
            "hidden-networks": (_HIDDEN_NETWORKS, _SOURCES["hidden-networks"]),
            CONVERGE: _converge("hidden-networks", _HIDDEN_NETWORKS),
        },
        "dense": {
            "lottery-ticket": (_LOTTERY_TICKET, _SOURCES["lottery-ticket"]),
            CONVERGE: _converge("lottery-ticket", _LOTTERY_TICKET),
        },
        "imp": {
            "lottery-ticket": ({**_LOTTERY_TICKET, "rounds": None}, _SOURCES["lottery-ticket"]),
            CONVERGE: _converge("lottery-ticket", {**_LOTTERY_TICKET, "rounds": None}),
        },
        # scikit-learn's MLPClassifier(early_stopping=True): batch_size "auto" = 200,
        # learning_rate_init 1e-3, alpha 1e-4, max_iter 200, n_iter_no_change 10 (on our
        # validation split, where scikit-learn would hold out 10 % of the training split).
        "dense-sklearn": {
            CONVERGE: (
                {
                    "epochs": CONVERGE_MAX_EPOCHS,
                    "batch_size": 200,
                    "lr": 1e-3,
                    "alpha": 1e-4,
                    "patience": CONVERGE_PATIENCE,
                },
                "scikit-learn MLPClassifier(early_stopping=True)'s defaults, on the "
                "validation split",
            ),
        },
    }
    return {
        method: {name: Recipe(name, method, p, s) for name, (p, s) in named.items()}
        for method, named in table.items()
    }


#: Recipes by baseline name, then by recipe name.
RECIPES: dict[str, dict[str, Recipe]] = _recipes()


def recipe_for(method: str, name) -> Recipe:
    """The recipe ``name`` of the baseline ``method``, or a one-line error listing its recipes.

    Examples
    --------
    >>> recipe_for("edge-popup", "hidden-networks").params["epochs"]
    100
    >>> recipe_for("edge-popup", "fast")
    Traceback (most recent call last):
    ...
    prunetrain.errors.PrunetrainError: unknown recipe 'fast' for baseline 'edge-popup'; expected one of converge, hidden-networks
    """
    known = RECIPES.get(method, {})
    if not isinstance(name, str) or name not in known:
        listed = ", ".join(sorted(known)) or "none (it has no recipes)"
        raise PrunetrainError(
            f"unknown recipe {name!r} for baseline {method!r}; expected one of {listed}"
        )
    return known[name]


def recipe_names(method: str) -> Choice:
    """The declared constraint of baseline ``method``'s ``recipe``: one of its recipes' names,
    or ``None``.

    Examples
    --------
    >>> recipe_names("dense").describe()
    "str in {'converge', 'lottery-ticket'}, or None"
    """
    return Choice(tuple(sorted(RECIPES.get(method, {}))), optional=True)


def with_recipe(method: str, params: Mapping) -> dict:
    """``params`` over the values of the recipe they name (``params["recipe"]``), if any.

    What is given explicitly wins: ``{"recipe": "hidden-networks", "epochs": 5}``
    is the hidden-networks recipe for 5 epochs.

    Examples
    --------
    >>> p = with_recipe("dense", {"recipe": "lottery-ticket", "epochs": 5})
    >>> p["epochs"], p["lr"], p["recipe"]
    (5, 0.1, 'lottery-ticket')
    """
    name = params.get("recipe")
    if name is None:
        return dict(params)
    return {**recipe_for(method, name).params, **params}


def overridden(method: str, params: Mapping) -> list[str]:
    """The hyperparameters of ``params`` that differ from the recipe they name (sorted).

    Empty when no recipe is named or every value is the recipe's.
    """
    name = params.get("recipe")
    if name is None:
        return []
    recipe = recipe_for(method, name)
    return sorted(k for k, v in recipe.params.items() if k in params and params[k] != v)
