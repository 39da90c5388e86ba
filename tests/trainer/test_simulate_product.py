"""`--learner product`: the platform's loop (head between fine-tunes on a schedule), tiny."""

import pytest

from tests.trainer.test_simulate import _write_csv
from trainer.simulate import main
from trainer.simulation.product import product_variant
from trainer.simulation.report import read_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def product_simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("productsim")
    _write_csv(root / "pool.csv", 80, 5)
    _write_csv(root / "eval.csv", 20, 6)
    argv = ["--learner", "product", "--pool", str(root / "pool.csv"),
            "--eval", str(root / "eval.csv"), "--text-columns", "title,text",
            "--out-dir", str(root / "out" / "run"), "--model", "all-MiniLM-L6-v2",
            "--strategies",
            "random,auto+bal+st,auto+bal+st+ver,auto+bal+st+vrank,auto+bal+st+strat",
            "--seeds", "0",
            "--seed-size", "6", "--batch-size", "6", "--max-labels", "24",
            "--finetune-at", "12,24", "--pool-subsample", "30", "--max-length", "16",
            "--epochs", "1", "--max-steps", "2", "--device", "cpu"]
    assert main(argv) == 0
    return root / "out" / "run"


def test_each_strategy_has_the_served_version_and_tfidf_at_every_fine_tune(product_simulated):
    rows = read_rows(product_simulated / "results.csv")
    for strategy in ("random", "auto+bal+st", "auto+bal+st+ver", "auto+bal+st+vrank",
                     "auto+bal+st+strat"):
        assert sorted(r["labels"] for r in rows if r["strategy"] == strategy) == [12, 24]
        assert sorted(r["labels"] for r in rows
                      if r["strategy"] == f"{strategy}:tfidf") == [12, 24]
    assert all(0 <= r["macro_f1"] <= 1 for r in rows)


def test_arms_with_the_same_labels_share_one_fine_tune(product_simulated):
    # before the first version the head arms pick alike: the 12-label fine-tune is one cached
    # result; random's labels differ; after it the arms part
    cached = list((product_simulated / "finetunes").glob("*.npz"))
    assert 4 <= len(cached) <= 7
    rows = read_rows(product_simulated / "results.csv")
    at_12 = {r["strategy"]: r["macro_f1"] for r in rows if r["labels"] == 12}
    assert at_12["auto+bal+st"] == at_12["auto+bal+st+ver"] == at_12["auto+bal+st+vrank"] \
        == at_12["auto+bal+st+strat"]


def test_each_run_writes_the_rows_it_labeled_in_order(product_simulated):
    import csv

    pool = list(csv.DictReader((product_simulated.parent.parent / "pool.csv").open()))
    for strategy in ("random", "auto+bal+st", "auto+bal+st+vrank"):
        with (product_simulated / "runs" / f"{strategy}-0.labels.csv").open() as f:
            picked = list(csv.DictReader(f))
        assert [int(r["order"]) for r in picked] == list(range(1, 25))
        rows = [int(r["pool_row"]) for r in picked]
        assert len(set(rows)) == 24
        assert all(r["label"] == pool[i]["label"] for r, i in zip(picked, rows, strict=True))


def test_the_per_class_report_finds_every_served_version(product_simulated, capsys):
    """bench.served_classes reads the cached fine-tunes by the rows each run labeled: its
    macro-F1 is the served row's, for every strategy, seed and fine-tune."""
    from bench.served_classes import class_rows
    from bench.served_classes import main as served_classes

    rows = class_rows(product_simulated)
    served = {(r["strategy"], r["labels"]): r["macro_f1"]
              for r in read_rows(product_simulated / "results.csv") if ":" not in r["strategy"]}
    found = {(r["strategy"], r["labels"]) for r in rows}
    assert found == set(served)
    for (strategy, n), macro_f1 in served.items():
        classes = [r for r in rows if r["strategy"] == strategy and r["labels"] == n]
        assert len(classes) == 3
        assert abs(sum(r["labeled_share"] for r in classes) - 1) < 0.01
        assert abs(sum(r["predicted_share"] for r in classes) - 1) < 0.01
        assert abs(classes[0]["macro_f1"] - macro_f1) < 0.001, (strategy, n)
    assert served_classes([str(product_simulated)]) == 0
    assert "| predicted_share |" in capsys.readouterr().out


def test_the_recipe_is_part_of_a_fine_tunes_cache_key():
    import numpy as np

    from trainer.simulate import parse_args
    from trainer.simulation.inputs import train_config
    from trainer.simulation.product import finetune_cache

    argv = ["--learner", "product", "--pool", "p.csv", "--eval", "e.csv"]
    default, all_labels = parse_args(argv), parse_args([*argv, "--val-fraction", "0"])
    assert train_config(default, 0).val_fraction == 0.1  # the trainer's own default
    assert train_config(all_labels, 0).val_fraction == 0
    cand = np.arange(5)
    assert finetune_cache(default, 0, [3, 1], cand) == finetune_cache(default, 0, [1, 3], cand)
    assert finetune_cache(default, 0, [1, 3], cand) != finetune_cache(all_labels, 0, [1, 3], cand)
    assert finetune_cache(default, 0, [1, 3], cand) != finetune_cache(default, 1, [1, 3], cand)
    longer = parse_args([*argv, "--epochs", "6"])
    assert finetune_cache(default, 0, [1, 3], cand) != finetune_cache(longer, 0, [1, 3], cand)


def test_with_vrank_labelers_take_the_versions_most_uncertain_candidates(tmp_path, monkeypatch):
    """Between fine-tunes "+vrank" labels the active version's margin ranking of its
    candidates from the top (a random control aside), not the head's picks."""
    import numpy as np

    import trainer.simulation.product as product

    _write_csv(tmp_path / "pool.csv", 80, 5)
    _write_csv(tmp_path / "eval.csv", 20, 6)
    trained: list[tuple[list[int], np.ndarray]] = []

    def fake_finetune(cfg, seed, labeled, pool_x, pool_y, eval_x, names, cand):
        trained.append((list(labeled), cand))
        top = np.linspace(0.5, 0.99, len(cand))  # candidate k: margin grows with k
        proba = np.stack([top, 1 - top, np.zeros(len(cand))], axis=1)
        return {"proba": np.full((len(eval_x), len(names)), 1 / len(names)),
                "cand_proba": proba, "seconds": np.array(0.0)}

    monkeypatch.setattr(product, "_finetune", fake_finetune)
    argv = ["--learner", "product", "--pool", str(tmp_path / "pool.csv"),
            "--eval", str(tmp_path / "eval.csv"), "--text-columns", "title,text",
            "--out-dir", str(tmp_path / "out" / "run"), "--model", "all-MiniLM-L6-v2",
            "--strategies", "auto+bal+st+vrank", "--seeds", "0", "--seed-size", "6",
            "--batch-size", "6", "--max-labels", "24", "--finetune-at", "12,24",
            "--pool-subsample", "30", "--max-length", "16", "--device", "cpu"]
    assert main(argv) == 0
    (first, cand), (second, _) = trained
    taken = second[len(first):]
    assert len(taken) == 12
    # 12 picks with a 10% random control: 11 by margin, the 11 smallest of the candidates
    assert set(cand[:11].tolist()) <= set(taken)


def test_stratified_picks_keep_the_heads_first_and_take_every_class_in_turn():
    import numpy as np

    from trainer.simulation.product import with_stratified_picks

    unlabeled = np.arange(100, 130)
    predicted = np.array([0] * 20 + [1] * 6 + [2] * 4)  # rows 100-119: class 0, ...
    proba = np.eye(3)[predicted]  # uneven: class 2 under half an even share
    picks = with_stratified_picks([125, 101, 129, 110, 102, 103], proba, unlabeled, 6, 0)
    assert picks[:3] == [125, 101, 129]  # the head's first half, in its order
    rest = picks[3:]
    assert len(set(picks)) == 6 and not set(rest) & {125, 101, 129}
    assert sorted(predicted[np.searchsorted(unlabeled, rest)].tolist()) == [0, 1, 2]
    # a class with no row left is skipped; fewer rows than asked: all there are
    assert len(with_stratified_picks([100], proba[:2], unlabeled[:2], 2, 0)) == 2
    # even predicted classes: half the share, as the product (class_sample_share) ...
    even = np.eye(3)[[0, 1, 2] * 10]
    head = [125, 101, 129, 110, 102, 103, 104, 105]
    assert with_stratified_picks(head, even, unlabeled, 8, 0)[:6] == head[:6]
    # ... unless flat (--class-share-flat)
    flat = with_stratified_picks(head, even, unlabeled, 8, 0, flat=True)
    assert flat[:4] == head[:4] and flat[4:] != head[4:]
    from trainer.simulate import parse_args

    argv = ["--pool", "p.csv", "--eval", "e.csv"]
    assert parse_args(argv).class_sample_share == 0.5  # the product's default
    assert not parse_args(argv).class_share_flat
    config = parse_args([*argv, "--class-sample-share", "0.25", "--class-share-flat"])
    assert config.class_sample_share == 0.25 and config.class_share_flat


def test_variants_parse_and_unknown_ones_are_refused():
    assert product_variant("zero_shot+bal+st+ver") == ("zero_shot+bal+st", True, False, False)
    assert product_variant("zero_shot+bal+st+vrank") == ("zero_shot+bal+st", False, True, False)
    assert product_variant("zero_shot+bal+st+strat") == ("zero_shot+bal+st", False, False, True)
    assert product_variant("random") == ("random", False, False, False)
    for unknown in ("auto+magic+ver", "random+vrank", "auto+ver+vrank", "random+strat",
                    "auto+strat+vrank"):
        with pytest.raises(ValueError):
            product_variant(unknown)
