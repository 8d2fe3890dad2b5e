"""The evolutionary family's package: each searcher registered once (the old module is retired)."""

import importlib

from prunetrain.search import SEARCHERS

FAMILY = {
    "ga": "prunetrain.search.evolution.ga",
    "evolution": "prunetrain.search.evolution.strategies",
    "pbil": "prunetrain.search.evolution.distributions",
    "cem": "prunetrain.search.evolution.distributions",
    "nes": "prunetrain.search.evolution.distributions",
}


def test_each_searcher_is_registered_once_from_its_module():
    for name, module in FAMILY.items():
        assert SEARCHERS[name].__module__ == module
    for module in set(FAMILY.values()):
        importlib.import_module(module)  # importing again registers nothing twice
    assert (
        sum(cls.__module__.startswith("prunetrain.search.evolution.") for cls in SEARCHERS.values())
        == 5
    )
