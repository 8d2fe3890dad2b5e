"""The evolutionary family's package: each searcher registered once, the old module's names kept."""

import importlib

from prunetrain.masks import Layout
from prunetrain.search import SEARCHERS, evolution, evolutionary

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


def test_the_old_module_still_exports_the_family():
    assert set(evolutionary.__all__) == {"Layout", *evolution.__all__}
    for name in evolution.__all__:
        assert getattr(evolutionary, name) is getattr(evolution, name)
    assert evolutionary.Layout is Layout
    assert evolutionary.GeneticSearcher is SEARCHERS["ga"]
