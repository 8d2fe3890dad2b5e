"""README.md's result tables are exactly what the committed comparison summaries give (issue 21)."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "readme_results.py"


def load_script():
    spec = importlib.util.spec_from_file_location("readme_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_results_block_matches_the_committed_summaries():
    assert load_script().main(["--check"]) == 0


def test_a_changed_number_is_caught(tmp_path, monkeypatch):
    script = load_script()
    text = script.README.read_text()
    begin = text.index(script.BEGIN)
    row = text.index("| `probe` |", begin)
    cell = text.index(" ± ", row)
    changed = text[: cell - 1] + ("0" if text[cell - 1] != "0" else "1") + text[cell:]
    readme = tmp_path / "README.md"
    readme.write_text(changed)
    monkeypatch.setattr(script, "README", readme)
    assert script.main(["--check"]) == 1
    assert readme.read_text() == changed  # --check writes nothing
