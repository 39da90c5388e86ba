"""The simulation CLI end to end on a tiny synthetic CSV, and its summary arithmetic."""

import csv
import random

import pytest

from trainer.simulate import main
from trainer.simulation.report import labels_to_reach, labels_to_stay_above, read_rows, summarize

WORDS = {"positive": ["great", "love", "perfect"], "negative": ["awful", "hate", "broken"],
         "neutral": ["okay", "fine", "average"]}


def _write_csv(path, n, seed):
    rng = random.Random(seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "title", "text", "label"])
        for i in range(n):
            label = rng.choice(list(WORDS))
            writer.writerow([i, f"review {i}", f"this dress is {rng.choice(WORDS[label])}", label])


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    _write_csv(root / "pool.csv", 60, 1)
    _write_csv(root / "eval.csv", 15, 2)
    argv = ["--pool", str(root / "pool.csv"), "--eval", str(root / "eval.csv"),
            "--text-columns", "title,text", "--out-dir", str(root / "out"),
            "--strategies", "random,margin_diverse", "--seeds", "0",
            "--seed-size", "6", "--batch-size", "4", "--rounds", "1",
            "--max-length", "16", "--epochs", "1", "--max-steps", "2",
            "--pool-subsample", "20", "--device", "cpu"]
    assert main(argv) == 0
    return root / "out", argv


def test_it_writes_one_row_per_strategy_and_round(simulated):
    out, _ = simulated
    rows = read_rows(out / "results.csv")
    assert [(r["strategy"], r["round"], r["labels"]) for r in rows] == [
        ("random", 0, 6), ("random", 1, 10), ("margin_diverse", 0, 6), ("margin_diverse", 1, 10),
    ]
    assert all(0 <= r["macro_f1"] <= 1 and r["seconds"] > 0 for r in rows)


def test_it_draws_a_learning_curve_png(simulated):
    out, _ = simulated
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "labels to reach random" in (out / "summary.md").read_text()


def test_running_it_again_resumes_without_redoing_rounds(simulated):
    out, argv = simulated
    before = (out / "runs" / "random-0.csv").read_text()
    assert main(argv) == 0
    assert (out / "runs" / "random-0.csv").read_text() == before


def test_labels_to_reach_interpolates_between_rounds():
    curve = {100: [0.4, 0.6], 200: [0.7, 0.7], 300: [0.8, 0.8]}
    assert labels_to_reach(curve, 0.5) == 100
    assert labels_to_reach(curve, 0.75) == pytest.approx(250)
    assert labels_to_reach(curve, 0.9) is None


def test_labels_to_stay_above_ignores_a_lucky_spike():
    curve = {100: [0.5], 200: [0.8], 300: [0.6], 400: [0.7], 500: [0.9]}
    assert labels_to_reach(curve, 0.75) == pytest.approx(183.33, abs=0.01)  # the spike
    assert labels_to_stay_above(curve, 0.75) == pytest.approx(425)
    assert labels_to_stay_above({100: [0.5], 200: [0.6]}, 0.75) is None


def test_summary_compares_each_strategy_with_random_at_the_reference():
    rows = [{"strategy": s, "seed": 0, "labels": n, "macro_f1": f}
            for s, points in {"random": [(100, 0.5), (200, 0.6)],
                              "margin": [(100, 0.55), (200, 0.7)]}.items()
            for n, f in points]
    summary = summarize(rows, 200)
    assert summary["random_macro_f1_at_reference"] == 0.6
    assert summary["strategies"]["margin"]["labels_to_reach_random"] == 133
    assert summary["strategies"]["random"]["labels_to_reach_random"] == 200


@pytest.fixture(scope="module")
def head_simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("headsim")
    _write_csv(root / "pool.csv", 80, 3)
    _write_csv(root / "eval.csv", 30, 4)
    argv = ["--learner", "head", "--pool", str(root / "pool.csv"),
            "--eval", str(root / "eval.csv"), "--text-columns", "title,text",
            "--out-dir", str(root / "out" / "run"), "--model", "all-MiniLM-L6-v2",
            "--strategies", "random,auto+bal+st,breaking_ties+anchor,embedding_kmeans",
            "--seeds", "0,1", "--seed-size", "6", "--batch-size", "6", "--max-labels", "30",
            "--max-length", "16", "--device", "cpu", "--eval-part", "tune"]
    assert main(argv) == 0
    return root / "out"


def test_the_head_learner_draws_a_curve_per_strategy_and_caches_embeddings(head_simulated):
    rows = read_rows(head_simulated / "run" / "results.csv")
    assert {r["strategy"] for r in rows} == {"random", "auto+bal+st", "breaking_ties+anchor",
                                             "embedding_kmeans"}
    for strategy in ("random", "auto+bal+st"):
        labels = sorted(r["labels"] for r in rows if r["strategy"] == strategy and r["seed"] == 0)
        assert labels == [6, 12, 18, 24, 30]
    assert all(0 <= r["macro_f1"] <= 1 for r in rows)
    assert len(list((head_simulated / "emb-cache").glob("*.npy"))) == 2  # pool and eval files
    summary = (head_simulated / "run" / "summary.md").read_text()
    assert "worst gap to random" in summary


def test_unknown_head_variants_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown head strategy"):
        main(["--learner", "head", "--pool", "p.csv", "--eval", "e.csv",
              "--strategies", "auto+magic", "--out-dir", str(tmp_path)])


def test_the_head_learner_mixes_class_samples_into_strat_batches(tmp_path):
    from unittest import mock

    from trainer.simulation import learners

    _write_csv(tmp_path / "pool.csv", 60, 5)
    _write_csv(tmp_path / "eval.csv", 15, 6)
    with mock.patch.object(learners, "with_stratified_picks",
                           wraps=learners.with_stratified_picks) as mixed:
        assert main(["--learner", "head", "--pool", str(tmp_path / "pool.csv"),
                     "--eval", str(tmp_path / "eval.csv"), "--text-columns", "title,text",
                     "--out-dir", str(tmp_path / "out" / "run"), "--model", "all-MiniLM-L6-v2",
                     "--strategies", "breaking_ties+st+strat", "--seeds", "0",
                     "--seed-size", "6", "--batch-size", "6", "--max-labels", "18",
                     "--max-length", "16", "--device", "cpu", "--eval-part", "tune"]) == 0
    assert mixed.call_count == 2  # the batches after 6 and 12 labels, none after the last
    rows = read_rows(tmp_path / "out" / "run" / "results.csv")
    assert sorted(r["labels"] for r in rows if r["strategy"] == "breaking_ties+st+strat") == [
        6, 12, 18]
