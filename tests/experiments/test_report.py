"""The comparison report from synthetic records: statistics, sweeps, ``prunetrain report``, HTML."""

import base64
import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from prunetrain.cli import cli as cli_group
from prunetrain.cli import main
from prunetrain.errors import PrunetrainError
from prunetrain.experiments import ReportOptions, parse_config, report_folders, summarize
from prunetrain.experiments.aggregate import group_of, overshoot, sweeps
from prunetrain.experiments.html import render
from prunetrain.experiments.plots import seed_band

# Final test accuracy by (label, arch, keep) -> per seed 0, 1, 2.
FINAL = {
    ("edge-popup", "64-16-10", 0.5): [0.90, 0.92, 0.94],
    ("dense", "64-16-10", 0.5): [0.95, 0.96, 0.97],
    ("accumulate", "64-16-10", 0.5): [0.85, 0.90, 0.89],
    ("hill", "64-16-10", 0.5): [0.80, 0.81, 0.84],
    ("edge-popup", "64-16-10", 0.3): [0.88, 0.90, 0.92],
    ("dense", "64-16-10", 0.3): [0.95, 0.96, 0.97],
    ("accumulate", "64-16-10", 0.3): [0.80, 0.82, 0.84],
    ("hill", "64-16-10", 0.3): [0.70, 0.72, 0.74],
    ("edge-popup", "64-64-10", 0.5): [0.93, 0.94, 0.95],
    ("dense", "64-64-10", 0.5): [0.97, 0.97, 0.97],
    ("accumulate", "64-64-10", 0.5): [0.90, 0.91, 0.92],
    ("hill", "64-64-10", 0.5): [0.84, 0.85, 0.86],
}
KINDS = {"edge-popup": "baseline", "dense": "baseline", "accumulate": "search", "hill": "search"}


def history(final: float, kind: str) -> list[dict]:
    """Four rows: test accuracy 0.1, 0.5·final, 0.97·final, final at 1, 2, 3, 4 s."""
    out = []
    for i, acc in enumerate([0.1, 0.5 * final, 0.97 * final, final]):
        out.append(
            {
                "seconds": float(i + 1),
                "evaluations": 10.0 * i,
                "sample_forwards": 1000.0 * (i + 1),
                "test_accuracy": acc,
                **({"epoch": i} if kind == "baseline" else {"improved": True}),
            }
        )
    return out


def make_record(label, arch, keep, seed, final, budget="100evals"):
    kind = KINDS[label]
    search = kind == "search"
    run = {
        "kind": kind,
        "label": label,
        "method": label,
        "params": {},
        "dataset": "digits",
        "arch": arch,
        "keep": keep,
        "seed": seed,
        "budget": budget if search else None,
        "options": {"init": "signed_constant", "scale": "keep", "keep_rule": "layer"},
    }
    record = {
        "key": f"{label}-{arch}-{keep}-{seed}-{budget}",
        "kind": kind,
        "label": label,
        "run": run,
        "stopped_by": "budget",
        "evaluations": 104.0 if search else 30.0,
        "sample_forwards": 4000.0,
        "seconds": 4.0,
        "keep_fraction": keep if label != "dense" else 1.0,
        "train_accuracy": final,
        "val_accuracy": final,
        "test_accuracy": final,
        "versions": {"platform": "Linux-test"},
        "history": history(final, kind),
    }
    if search:
        record["budget_overshoot"] = 4.0 + seed
    else:
        record.update(epochs=3, produces="ticket" if label == "edge-popup" else "weights")
    return record


def synthetic_records() -> list[dict]:
    return [
        make_record(label, arch, keep, seed, acc)
        for (label, arch, keep), accs in FINAL.items()
        for seed, acc in enumerate(accs)
    ]


def write_results(folder, records):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def group(summary, arch, keep):
    return next(g for g in summary["groups"] if (g["arch"], g["keep"]) == (arch, keep))


def test_report_cli_regenerates_everything_from_results(tmp_path):
    folder = write_results(tmp_path / "cmp", synthetic_records())
    # The records hold no probe (the package default): name accumulate the default.
    result = CliRunner().invoke(cli_group, ["report", str(folder), "--default", "accumulate"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    names = {p.name for p in folder.iterdir()}
    for name in (
        "summary.md",
        "summary.json",
        "report.html",
        "sweep_keep.png",
        "sweep_width.png",
        "pareto_time_digits_64-16-10_keep0.5_signed_constant.png",
        "pareto_forwards_digits_64-64-10_keep0.5_signed_constant.png",
        "test_vs_time_digits_64-16-10_keep0.3_signed_constant.png",
    ):
        assert name in names
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["budget"] == "100evals" and len(summary["groups"]) == 3
    g = group(summary, "64-16-10", 0.5)
    # Paired: accumulate - dense per seed = (-0.10, -0.06, -0.08); mean -0.08, sd 0.02.
    paired = g["paired"]
    assert paired["best_gradient"] == "dense" and paired["default"] == "accumulate"
    d = paired["methods"]["accumulate"]["vs_best_gradient"]
    assert d["differences"] == pytest.approx([-0.10, -0.06, -0.08])
    assert d["mean"] == pytest.approx(-0.08)
    half = 4.302652729911275 * 0.02 / np.sqrt(3)
    assert (d["ci_low"], d["ci_high"]) == (
        pytest.approx(-0.08 - half, rel=1e-6),
        pytest.approx(-0.08 + half, rel=1e-6),
    )
    assert d["p"] == 0.25 and d["min_p"] == 0.25 and d["n"] == 3
    assert paired["methods"]["accumulate"]["vs_default"] is None
    hill = paired["methods"]["hill"]["vs_default"]  # hill - accumulate: (-0.05, -0.09, -0.05)
    assert hill["mean"] == pytest.approx(-0.19 / 3) and hill["p"] == 0.25
    assert hill["p_method"] == "exact (all sign flips; ties)"
    # Time to target: edge-popup's final mean is 0.92; 90 % = 0.828.
    ttt = g["time_to_target"]
    assert ttt["reference"] == "edge-popup"
    assert ttt["reference_accuracy"] == pytest.approx(0.92)
    ninety = ttt["targets"][0]
    assert ninety["fraction"] == 0.9 and ninety["accuracy"] == pytest.approx(0.828)
    # accumulate: 0.97·final = 0.8245 < 0.828 for seed 0, so seed 0 reaches it at 4 s; seeds
    # 1 and 2 at 3 s (0.873, 0.863). Median 3 s, 3000 sample-forwards.
    acc = ninety["methods"]["accumulate"]
    assert [p["seconds"] for p in acc["per_seed"]] == [4.0, 3.0, 3.0]
    assert (acc["seconds"], acc["sample_forwards"], acc["reached"]) == (3.0, 3000.0, 3)
    # hill reaches it only with seed 2 (0.84): the median is "not reached".
    hill_t = ninety["methods"]["hill"]
    assert (hill_t["seconds"], hill_t["reached"]) == (None, 1)
    # Gradient baselines: backward passes count twice, so 3 × the samples forwarded.
    dense = ninety["methods"]["dense"]
    assert (dense["seconds"], dense["sample_forwards"]) == (3.0, 9000.0)
    methods = {m["label"]: m for m in g["methods"]}
    assert methods["dense"]["sample_forwards_mean"] == 12000.0
    assert methods["accumulate"]["sample_forwards_mean"] == 4000.0
    assert methods["hill"]["overshoot_max"] == 6.0
    # Pareto fronts: same time for all, so only the best; by sample-forwards the searches
    # (4000) against the baselines (12000): accumulate, then dense.
    assert g["pareto"]["seconds"] == ["dense"]
    assert g["pareto"]["sample_forwards"] == ["dense", "accumulate"]
    # Sweeps: keep 0.3/0.5 on 64-16-10; width 64-16-10/64-64-10 at keep 0.5.
    kinds = {(s["kind"], len(s["panels"])) for s in summary["sweeps"]}
    assert kinds == {("keep", 1), ("width", 1)}
    keep_sweep = next(s for s in summary["sweeps"] if s["kind"] == "keep")
    hill_line = keep_sweep["panels"][0]["lines"]["hill"]
    assert [p["x"] for p in hill_line] == [0.3, 0.5]
    assert [p["test_mean"] for p in hill_line] == pytest.approx([0.72, 0.8166666666666667])
    text = (folder / "summary.md").read_text()
    assert "| accumulate | 3 | −0.0800 [" in text
    assert "not reached (1/3)" in text and "3.00 s (3/3) | 3000" in text
    assert "+6 evals" in text and "less than its last step" in text
    assert "2^(1−n)" in text and "fewer than 6 pairs" in text
    assert "regenerated by `prunetrain report " in text
    assert "keep 0.3 | keep 0.5" in text and "| hidden 16 | hidden 64 |" in text
    # One self-contained page: every plot of the markdown embedded, nothing fetched.
    page = (folder / "report.html").read_text()
    images = re.findall(r'<img alt="[^"]*" src="([^"]+)"', page)
    assert len(images) == text.count("![") and images
    assert all(src.startswith("data:image/png;base64,") for src in images)
    png = base64.b64decode(images[0].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table>" in page and "<h2>" in page


def test_report_keeps_the_config_options_and_accepts_new_ones(tmp_path):
    folder = write_results(tmp_path / "cmp", synthetic_records())
    report_folders([folder], overrides={"targets": [0.5], "default": "hill"}, plots=False)
    summary = json.loads((folder / "summary.json").read_text())
    times = [5.0, 15.0, 60.0, 300.0, 600.0]
    assert summary["options"] == {
        "targets": [0.5],
        "reference": "edge-popup",
        "default": "hill",
        "times": times,
    }
    assert group(summary, "64-16-10", 0.5)["paired"]["default"] == "hill"
    # A second report without options keeps them; a new one changes only what it names.
    report_folders([folder], plots=False)
    assert json.loads((folder / "summary.json").read_text())["options"]["default"] == "hill"
    report_folders([folder], overrides={"reference": "dense"}, plots=False)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["options"] == {
        "targets": [0.5],
        "reference": "dense",
        "default": "hill",
        "times": times,
    }
    ttt = group(summary, "64-16-10", 0.5)["time_to_target"]
    assert ttt["reference"] == "dense" and ttt["targets"][0]["accuracy"] == pytest.approx(0.48)


def test_report_merges_folders_into_one(tmp_path):
    records = synthetic_records()
    a = write_results(tmp_path / "a", [r for r in records if r["run"]["keep"] == 0.5])
    b = write_results(tmp_path / "b", [r for r in records if r["run"]["keep"] == 0.3])
    (path,) = report_folders([a, b], tmp_path / "both", plots=False)
    summary = json.loads((path.parent / "summary.json").read_text())
    assert summary["name"] == "both" and len(summary["groups"]) == 3
    assert not (a / "summary.md").exists()  # the sources are only read


def test_report_errors_change_nothing(tmp_path, capsys):
    def run(*args):
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in args])
        return e.value.code, capsys.readouterr().err

    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = run("report", empty)
    assert code == 2 and "no results.jsonl" in err and len(err.strip().splitlines()) == 1
    good = write_results(tmp_path / "good", synthetic_records())
    code, err = run("report", good, "--targets", "0.9,x")
    assert code == 2 and "--targets" in err
    code, err = run("report", good, "--targets", "-1")
    assert code == 2 and "targets" in err
    code, err = run("report", good, empty)  # the good folder is not written either
    assert code == 2 and sorted(p.name for p in good.iterdir()) == ["results.jsonl"]
    # Two different runs of one label and seed in a group: refuse, do not mix them.
    clash = synthetic_records()
    clash.append({**clash[0], "key": "other", "run": {**clash[0]["run"], "budget": "5s"}})
    bad = write_results(tmp_path / "clash", clash)
    code, err = run("report", bad)
    assert code == 2 and "different runs of seed 0" in err
    assert sorted(p.name for p in bad.iterdir()) == ["results.jsonl"]


def test_report_options_from_a_config():
    base = {"budget": "10evals", "methods": {"hill": {}}}
    c = parse_config({**base, "report": {"targets": [0.8, 0.99], "reference": "dense"}})
    assert c.report == ReportOptions(targets=(0.8, 0.99), reference="dense")
    assert parse_config(base).report == ReportOptions()
    for bad, message in [
        ({"targets": []}, "targets"),
        ({"targets": [0.9, "high"]}, "targets"),
        ({"colour": 1}, "unknown option"),
        ({"reference": 3}, "reference"),
        (3, "table"),
    ]:
        with pytest.raises(PrunetrainError, match=message):
            parse_config({**base, "report": bad})


def test_mean_curve_only_where_every_seed_has_a_value():
    early = [{"seconds": 0.1, "test_accuracy": 0.9}]  # one seed starts at once...
    late = [{"seconds": 0.5, "test_accuracy": 0.3}, {"seconds": 1.0, "test_accuracy": 0.5}]
    grid = np.array([0.2, 0.4, 0.6, 2.0])
    mean, low, high = seed_band([early, late], "seconds", grid)
    # ...but the mean waits for the other (no spike to 0.9), then carries both forward.
    assert np.isnan(mean[:2]).all() and np.isnan(low[:2]).all() and np.isnan(high[:2]).all()
    assert mean[2:] == pytest.approx([0.6, 0.7])
    assert low[2:].tolist() == [0.3, 0.5] and high[2:].tolist() == [0.9, 0.9]


def test_overshoot_of_records_without_the_field():
    r = make_record("hill", "64-16-10", 0.5, 0, 0.8)
    assert overshoot(r) == (4.0, "evaluations")
    del r["budget_overshoot"]
    assert overshoot(r) == (4.0, "evaluations")  # 104 evaluations for 100
    r["run"]["budget"], r["seconds"] = "3s", 3.25
    assert overshoot(r) == (0.25, "seconds")
    assert overshoot(make_record("dense", "64-16-10", 0.5, 0, 0.9)) == (None, None)


def test_groups_and_sweeps_need_two_values():
    records = [r for r in synthetic_records() if r["run"]["arch"] == "64-64-10"]
    groups = summarize(records)
    assert list(groups) == [("digits", "64-64-10", 0.5, "signed_constant")]
    assert group_of(records[0]) == ("digits", "64-64-10", 0.5, "signed_constant")
    assert sweeps(groups) == []


def test_html_escapes_and_reports_missing_plots(tmp_path):
    page = render("# <T>\n\ntext & `a<b`\n\n![x](gone.png)\n\n- one\n- two\n", tmp_path, "t")
    assert "<h1>&lt;T&gt;</h1>" in page and "text &amp; <code>a&lt;b</code>" in page
    assert "missing plot gone.png" in page and "<ul><li>one</li><li>two</li></ul>" in page


# --- at equal time ------------------------------------------------------------------------------

#: Hand-made curves, per label and seed: ((seconds, test accuracy), ...), the run's wall time
#: (its last row), and the kind of record.
CURVES = {
    "accumulate": [
        [(2.0, 0.50), (10.0, 0.60), (50.0, 0.70), (400.0, 0.80)],
        [(3.0, 0.40), (12.0, 0.70), (70.0, 0.75), (410.0, 0.85)],
        [(6.0, 0.30), (20.0, 0.50), (200.0, 0.90), (590.0, 0.95)],
    ],
    "edge-popup": [
        [(0.0, 0.10), (4.0, 0.60), (8.0, 0.70)],
        [(0.0, 0.10), (4.0, 0.60), (8.0, 0.72)],
        [(0.0, 0.10), (4.0, 0.60), (8.0, 0.74)],
    ],
    # Seed 0 stops at 10 s, the others run on to 100 s: at 15 s one of three has finished.
    "hill": [
        [(1.0, 0.20), (10.0, 0.40)],
        [(1.0, 0.20), (9.0, 0.30), (100.0, 0.60)],
        [(1.0, 0.20), (9.0, 0.30), (100.0, 0.70)],
    ],
}


def curve_records() -> list[dict]:
    records = []
    for label, seeds in CURVES.items():
        for seed, points in enumerate(seeds):
            r = make_record(label, "64-16-10", 0.5, seed, points[-1][1], budget="600s")
            r["history"] = [
                {**r["history"][0], "seconds": t, "test_accuracy": acc} for t, acc in points
            ]
            r["seconds"] = points[-1][0]
            records.append(r)
    return records


def equal_time_rows(text: str) -> dict[str, list[str]]:
    """The cells of the markdown "at equal time" table, by method (the header under "method")."""
    lines = text[text.index("### At equal time") :].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = {}
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] != "---":
            rows[cells[0]] = cells[1:]
    return rows


def test_accuracy_at_equal_time_in_summary_json_markdown_and_html(tmp_path):
    folder = write_results(tmp_path / "cmp", curve_records())
    report_folders([folder], overrides={"default": "accumulate"}, plots=False)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["options"]["times"] == [5.0, 15.0, 60.0, 300.0, 600.0]  # the defaults
    table = summary["groups"][0]["at_equal_time"]
    assert table["times"] == [5.0, 15.0, 60.0, 300.0, 600.0]
    acc = {c["seconds"]: c for c in table["methods"]["accumulate"]}
    # At 5 s seed 2 has no point yet (its first is at 6 s): no mean, as on the plots.
    assert [(p["accuracy"], p["finished"]) for p in acc[5.0]["per_seed"]] == [
        (0.5, False),
        (0.4, False),
        (None, False),
    ]
    assert acc[5.0]["mean"] is None and acc[5.0]["ci95"] is None
    # At 15 s each seed's last point at or before it: 0.60 (10 s), 0.70 (12 s), 0.30 (6 s).
    assert [p["accuracy"] for p in acc[15.0]["per_seed"]] == [0.6, 0.7, 0.3]
    assert acc[15.0]["mean"] == pytest.approx(1.6 / 3)
    sd = np.std([0.6, 0.7, 0.3], ddof=1)
    assert acc[15.0]["ci95"] == pytest.approx(4.302652729911275 * sd / np.sqrt(3))
    assert [p["accuracy"] for p in acc[300.0]["per_seed"]] == [0.7, 0.75, 0.9]
    # At 600 s every run has ended (400, 410, 590 s): each carries its final accuracy.
    assert [(p["accuracy"], p["finished"]) for p in acc[600.0]["per_seed"]] == [
        (0.8, True),
        (0.85, True),
        (0.95, True),
    ]
    assert (acc[600.0]["finished"], acc[600.0]["mean"]) == (3, pytest.approx(2.6 / 3))
    ep = {c["seconds"]: c for c in table["methods"]["edge-popup"]}
    assert ep[5.0]["mean"] == pytest.approx(0.6) and ep[5.0]["finished"] == 0
    assert ep[15.0]["mean"] == pytest.approx(0.72) and ep[15.0]["finished"] == 3
    hill = {c["seconds"]: c for c in table["methods"]["hill"]}
    assert [p["accuracy"] for p in hill[15.0]["per_seed"]] == [0.4, 0.3, 0.3]
    assert hill[15.0]["finished"] == 1
    # The highest mean at each time (at 5 s accumulate has none yet).
    assert table["ahead"] == ["edge-popup", "edge-popup", "edge-popup", "accumulate", "accumulate"]

    text = (folder / "summary.md").read_text()
    assert "last point recorded at or before" in text
    assert "† finished before this time: its final accuracy" in text
    rows = equal_time_rows(text)
    assert rows["method"] == ["5 s", "15 s", "60 s", "300 s", "600 s"]
    half = 4.302652729911275 * sd / np.sqrt(3)
    assert rows["accumulate"][:2] == ["—", f"0.5333 ± {half:.4f}"]
    late = 4.302652729911275 * np.std([0.8, 0.85, 0.95], ddof=1) / np.sqrt(3)
    assert rows["accumulate"][4] == f"**0.8667 ± {late:.4f} †**"  # every seed had finished
    assert rows["edge-popup"][0] == "**0.6000 ± 0.0000**"
    assert rows["edge-popup"][1] == "**0.7200 ± 0.0497 †**"
    assert rows["accumulate"][3].startswith("**0.7833 ± ")
    assert rows["edge-popup"][3] == "0.7200 ± 0.0497 †"
    assert rows["hill"][1].endswith(" †(1/3)")  # one of three seeds had finished
    # The time-to-target table is still there, before it.
    assert text.index("### Time to target") < text.index("### At equal time")
    page = (folder / "report.html").read_text()
    assert "<h3>At equal time</h3>" in page
    assert '<th class="num">15 s</th>' in page
    assert '<td>accumulate</td><td class="num">—</td>' in page


def test_equal_time_takes_a_custom_list_of_times(tmp_path):
    folder = write_results(tmp_path / "cmp", curve_records())
    report_folders([folder], overrides={"times": [4, 9.5]}, plots=False)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["options"]["times"] == [4.0, 9.5]
    table = summary["groups"][0]["at_equal_time"]
    assert table["times"] == [4.0, 9.5]
    hill = {c["seconds"]: c for c in table["methods"]["hill"]}
    assert [p["accuracy"] for p in hill[9.5]["per_seed"]] == [0.2, 0.3, 0.3]
    rows = equal_time_rows((folder / "summary.md").read_text())
    assert rows["method"] == ["4 s", "9.5 s"]
    assert rows["edge-popup"] == ["**0.6000 ± 0.0000**", "**0.7200 ± 0.0497 †**"]
    # Kept in summary.json: a later report without options uses them again.
    report_folders([folder], plots=False)
    assert json.loads((folder / "summary.json").read_text())["options"]["times"] == [4.0, 9.5]


def test_equal_time_options_from_the_cli_and_a_config(tmp_path, capsys):
    folder = write_results(tmp_path / "cmp", curve_records())
    result = CliRunner().invoke(cli_group, ["report", str(folder), "--times", "1,30"])
    assert result.exit_code == 0, result.output
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["groups"][0]["at_equal_time"]["times"] == [1.0, 30.0]
    assert "--times 1,30" in summary["regenerated_by"]
    base = {"budget": "10evals", "methods": {"hill": {}}}
    assert parse_config({**base, "report": {"times": [10, 20]}}).report.times == (10.0, 20.0)
    for bad in ([], [0], [-5], ["x"], [True], 5):
        with pytest.raises(PrunetrainError, match="times must be a non-empty list of seconds"):
            ReportOptions.parse({"times": bad})
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(SystemExit) as e:
        main(["report", str(folder), "--times", "5,soon"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "bad --times '5,soon'" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in folder.iterdir()) == before
