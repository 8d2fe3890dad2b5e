"""Comparisons of searches and baselines: configs, the resumable runner, the report.

``prunetrain compare CONFIG.toml`` is a thin layer over :func:`run_comparison`.
"""

from prunetrain.experiments.config import Comparison, RunSpec, load_config, parse_config
from prunetrain.experiments.report import summarize, write_report
from prunetrain.experiments.runner import (
    ComparisonResult,
    execute_run,
    read_results,
    run_comparison,
)

__all__ = [
    "Comparison",
    "ComparisonResult",
    "RunSpec",
    "execute_run",
    "load_config",
    "parse_config",
    "read_results",
    "run_comparison",
    "summarize",
    "write_report",
]
