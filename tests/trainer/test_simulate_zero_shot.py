"""The simulation's zero-shot cold start end to end on a tiny CSV, and the comparison of two
strategies' curves (worst gap below, area under the curve)."""

import json

import pytest

from tests.trainer.test_simulate import _write_csv
from trainer.simulate import main
from trainer.simulation.report import curve_area, read_rows, summarize, versus


@pytest.fixture(scope="module")
def zero_shot_simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("zssim")
    _write_csv(root / "pool.csv", 80, 5)
    _write_csv(root / "eval.csv", 30, 6)
    argv = ["--learner", "head", "--pool", str(root / "pool.csv"),
            "--eval", str(root / "eval.csv"), "--text-columns", "title,text",
            "--out-dir", str(root / "out" / "run"), "--model", "all-MiniLM-L6-v2",
            "--strategies", "auto+bal+st,zero_shot+bal+st", "--seeds", "0",
            "--seed-size", "6", "--batch-size", "6", "--max-labels", "24",
            "--max-length", "16", "--device", "cpu",
            "--versus", "zero_shot+bal+st:auto+bal+st", "--area-to", "24"]
    assert main(argv) == 0
    return root / "out"


def test_the_zero_shot_curve_starts_at_zero_labels_and_the_kmeans_one_at_the_seed(
        zero_shot_simulated):
    rows = read_rows(zero_shot_simulated / "run" / "results.csv")
    labels = {s: [r["labels"] for r in rows if r["strategy"] == s]
              for s in ("auto+bal+st", "zero_shot+bal+st")}
    assert labels == {"auto+bal+st": [6, 12, 18, 24], "zero_shot+bal+st": [0, 6, 12, 18, 24]}
    assert all(0 <= r["macro_f1"] <= 1 for r in rows)
    # pool, eval and the label descriptions: embedded once, cached
    assert len(list((zero_shot_simulated / "emb-cache").glob("*.npy"))) == 3


def test_the_summary_compares_the_two_cold_starts(zero_shot_simulated):
    summary = json.loads((zero_shot_simulated / "run" / "summary.json").read_text())
    (entry,) = summary["versus"]
    assert (entry["strategy"], entry["reference"], entry["from"], entry["to"]) == (
        "zero_shot+bal+st", "auto+bal+st", 6, 24)
    assert "worst gap below" in (zero_shot_simulated / "run" / "summary.md").read_text()


def test_curve_area_is_the_mean_height_of_the_mean_curve():
    curve = {0: [0.2], 20: [0.4, 0.6], 40: [0.5], 100: [0.9]}
    assert curve_area(curve, 20, 40) == pytest.approx(0.5)
    assert curve_area(curve, 20, 100) == pytest.approx((20 * 0.5 + 60 * 0.7) / 80)
    assert curve_area(curve, 50, 60) is None


def test_versus_reports_the_worst_gap_below_on_shared_label_counts():
    data = {"zs": {0: [0.7], 20: [0.72], 40: [0.70], 60: [0.80]},
            "km": {20: [0.60], 40: [0.75], 60: [0.78]}}
    v = versus(data, "zs", "km", area_to=60, early=40)
    assert (v["from"], v["to"], v["max_deficit_at"]) == (20, 60, 40)
    assert v["max_deficit"] == pytest.approx(0.05)
    assert v["early_area"] == pytest.approx(0.71) and v["reference_early_area"] == 0.675
    rows = [{"strategy": s, "seed": 0, "labels": n, "macro_f1": f[0]}
            for s, points in data.items() for n, f in points.items()]
    assert summarize(rows, pairs=["zs:km", "zs:missing"])["versus"] == [
        versus(data, "zs", "km")]
