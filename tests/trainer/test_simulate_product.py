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
            "--strategies", "random,auto+bal+st,auto+bal+st+ver", "--seeds", "0",
            "--seed-size", "6", "--batch-size", "6", "--max-labels", "24",
            "--finetune-at", "12,24", "--pool-subsample", "30", "--max-length", "16",
            "--epochs", "1", "--max-steps", "2", "--device", "cpu"]
    assert main(argv) == 0
    return root / "out" / "run"


def test_each_strategy_has_the_served_version_and_tfidf_at_every_fine_tune(product_simulated):
    rows = read_rows(product_simulated / "results.csv")
    for strategy in ("random", "auto+bal+st", "auto+bal+st+ver"):
        assert sorted(r["labels"] for r in rows if r["strategy"] == strategy) == [12, 24]
        assert sorted(r["labels"] for r in rows
                      if r["strategy"] == f"{strategy}:tfidf") == [12, 24]
    assert all(0 <= r["macro_f1"] <= 1 for r in rows)


def test_arms_with_the_same_labels_share_one_fine_tune(product_simulated):
    # before the first version the base-space and version-space arms pick alike: the 12-label
    # fine-tune is one cached result; random's labels differ; after it the arms part
    cached = list((product_simulated / "finetunes").glob("*.npz"))
    assert 4 <= len(cached) <= 5
    rows = read_rows(product_simulated / "results.csv")
    at_12 = {r["strategy"]: r["macro_f1"] for r in rows if r["labels"] == 12}
    assert at_12["auto+bal+st"] == at_12["auto+bal+st+ver"]


def test_variants_parse_and_unknown_ones_are_refused():
    assert product_variant("zero_shot+bal+st+ver") == ("zero_shot+bal+st", True)
    assert product_variant("random") == ("random", False)
    with pytest.raises(ValueError):
        product_variant("auto+magic+ver")
