"""Comparisons of searches and baselines: configs, the resumable runner, the report.

``prunetrain compare CONFIG.toml`` is a thin layer over :func:`run_comparison`,
``prunetrain report DIR...`` over :func:`report_folders`.
"""

from prunetrain.experiments.aggregate import summarize
from prunetrain.experiments.config import (
    Comparison,
    ReportOptions,
    RunSpec,
    load_config,
    parse_config,
)
from prunetrain.experiments.report import report_folders, write_report
from prunetrain.experiments.results import read_results
from prunetrain.experiments.runner import ComparisonResult, execute_run, run_comparison

__all__ = [
    "Comparison",
    "ComparisonResult",
    "ReportOptions",
    "RunSpec",
    "execute_run",
    "load_config",
    "parse_config",
    "read_results",
    "report_folders",
    "run_comparison",
    "summarize",
    "write_report",
]
