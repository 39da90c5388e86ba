"""Simulated active learning: the real loop with a labeled CSV as the oracle.

Each round trains a FRESH model (trainer.train.train) on the labels so far, measures
macro-F1 on the evaluation file, scores a random candidate subsample of the unlabeled
pool and "asks" the oracle for the next batch picked by the strategy. Writes
results.csv (strategy, seed, round, labels, macro_f1, accuracy, seconds),
learning_curve.png and summary.json / summary.md.

    python -m trainer.simulate --pool train.csv --eval test.csv --strategies random,margin \
        --seeds 0,1,2 --seed-size 100 --batch-size 100 --max-labels 1000 --out-dir bench/out/al

Resumable: every (strategy, seed) run keeps its own CSV and labeled-set state under
out-dir/runs/; running the same command again continues where it stopped.
No Django here.
"""

import argparse
import csv
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

from trainer.simulation.curves import run_curve
from trainer.simulation.inputs import SimConfig
from trainer.simulation.learners import head_variant
from trainer.simulation.product import product_variant
from trainer.simulation.report import FIELDS, plot, read_rows, summarize, summary_md
from trainer.strategies import STRATEGIES


def simulate(cfg: SimConfig) -> dict:
    """All strategies x seeds; returns the summary (files written under cfg.out_dir)."""
    from tqdm import tqdm

    for strategy in cfg.strategies:
        if cfg.learner == "head":
            head_variant(strategy)
        elif cfg.learner == "product":
            product_variant(strategy)
        elif strategy.removesuffix("_diverse") not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not cfg.report_only:
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    jobs = [(cfg, s, seed) for seed in cfg.seeds for s in cfg.strategies]
    if cfg.report_only:
        jobs = [job for job in jobs if (out / "runs" / f"{job[1]}-{job[2]}.csv").exists()]
    elif cfg.jobs > 1:
        with ProcessPoolExecutor(cfg.jobs, mp_context=get_context("spawn")) as ex:
            for _ in tqdm(ex.map(run_curve, jobs), total=len(jobs), desc="runs"):
                pass
    else:
        for job in tqdm(jobs, desc="runs"):
            run_curve(job)
    rows = []
    for _, strategy, seed in jobs:
        rows += read_rows(out / "runs" / f"{strategy}-{seed}.csv")
    if cfg.report_only and not rows and (out / "results.csv").exists():  # merged elsewhere
        rows = read_rows(out / "results.csv")
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    reference = cfg.max_labels if cfg.rounds is None else None
    plot(rows, out / "learning_curve.png", reference,
         f"{Path(cfg.pool).parent.name}: mean over seeds, band = min-max")
    summary = summarize(rows, reference, pairs=cfg.versus, area_to=cfg.area_to)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(summary_md(summary))
    return summary


def _csv_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_args(argv=None) -> SimConfig:
    p = argparse.ArgumentParser(prog="python -m trainer.simulate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pool", required=True, help="labeled CSV used as the oracle")
    p.add_argument("--eval", required=True, help="labeled CSV to measure macro-F1 on")
    p.add_argument("--out-dir", default="bench/out/al")
    p.add_argument("--text-columns", default="text", help="comma-separated, joined with '. '")
    p.add_argument("--label-column", default="label")
    p.add_argument("--strategies", default="random,margin",
                   help=f"comma-separated of {', '.join(STRATEGIES)} (+ '<name>_diverse'); "
                   "--learner head: a head strategy or 'zero_shot' (+st, +bal, +anchor)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--seed-size", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=100, help="labels asked per round")
    p.add_argument("--max-labels", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=None, help="rounds after the seed round")
    p.add_argument("--seed-selection", choices=["random", "cluster"], default="random")
    p.add_argument("--random-share", type=float, default=0.1)
    p.add_argument("--pool-subsample", type=int, default=4000, help="candidates scored a round")
    p.add_argument("--eval-subsample", type=int, default=None)
    p.add_argument("--model", default="", help="built-in or registered name, hub id or folder; "
                   "'' = the default (multilingual-e5-small)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-length", type=int, default=None,
                   help="tokens per text; default: fitted to the labeled texts (at most 256)")
    p.add_argument("--train-batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=None,
                   help="default: the trainer's default for the model")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="labels a fine-tune holds out to pick its best epoch (default: the "
                        "trainer's; 0: train on all, keep the last epoch)")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--device", default="")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    p.add_argument("--learner", choices=["finetune", "head", "product"], default="finetune",
                   help="finetune: a fresh fine-tune each round; head: the fast loop "
                   "(logistic regression on cached base-encoder embeddings); product: the "
                   "platform's loop, the head between fine-tunes at --finetune-at "
                   "(trainer/simulation/product.py)")
    p.add_argument("--eval-part", choices=["all", "tune", "report"], default="all",
                   help="a fixed half of the eval file: choose defaults on tune, report on report")
    p.add_argument("--pool-limit", type=int, default=None,
                   help="a fixed random subset of the pool file is the pool")
    p.add_argument("--trust-kappa", type=float, default=0.8,
                   help="'auto': diversity until consecutive heads agree with this kappa")
    p.add_argument("--finetune-at", default="",
                   help="head learner: also fine-tune the model at these label counts; "
                   "product learner: the retrain schedule")
    p.add_argument("--head-candidates", type=int, default=0,
                   help="head learner: a random subsample of this many unlabeled items per "
                   "round (the product's FAST_LOOP_CANDIDATES); 0: all")
    p.add_argument("--zero-shot-picks", default="confident",
                   help="'zero_shot' strategies: the cold start's picks, 'confident' (each "
                   "predicted class's clearest items, trainer.zero_shot.confident_picks) or a "
                   "head strategy (e.g. balanced_ties) on the zero-shot scorer")
    p.add_argument("--handover", type=float, default=None,
                   help="'zero_shot' strategies: labels at which the head's weight reaches "
                   "one half (default: trainer.zero_shot.HANDOVER_LABELS)")
    p.add_argument("--class-sample-share", type=float, default=0.5,
                   help="'+strat': the share of each batch drawn at random within the head's "
                   "predicted classes (the product's Project.class_sample_share), halved "
                   "while the head predicts every class often, as the product")
    p.add_argument("--class-share-flat", action="store_true",
                   help="'+strat': the same share whatever the predicted classes (the "
                   "product before 2026-12-06)")
    p.add_argument("--versus", default="",
                   help="comma-separated 'a:b' pairs: strategy a against b in the summary "
                   "(worst gap below, area under the curve)")
    p.add_argument("--area-to", type=int, default=500,
                   help="--versus: the area under the curve up to this many labels")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: merge out-dir/runs into results, plot and summary")
    a = p.parse_args(argv)
    return SimConfig(
        pool=a.pool, eval=a.eval, out_dir=a.out_dir, text_columns=_csv_list(a.text_columns),
        label_column=a.label_column, strategies=_csv_list(a.strategies),
        seeds=[int(s) for s in _csv_list(a.seeds)], seed_size=a.seed_size,
        batch_size=a.batch_size, max_labels=a.max_labels, rounds=a.rounds,
        seed_selection=a.seed_selection, random_share=a.random_share,
        pool_subsample=a.pool_subsample, eval_subsample=a.eval_subsample, model=a.model,
        epochs=a.epochs, max_length=a.max_length, train_batch_size=a.train_batch_size,
        learning_rate=a.learning_rate, val_fraction=a.val_fraction,
        max_steps=a.max_steps, device=a.device, jobs=a.jobs,
        learner=a.learner, eval_part=a.eval_part, pool_limit=a.pool_limit,
        trust_kappa=a.trust_kappa, head_candidates=a.head_candidates,
        finetune_at=[int(v) for v in _csv_list(a.finetune_at)],
        report_only=a.report_only, zero_shot_picks=a.zero_shot_picks, handover=a.handover,
        class_sample_share=a.class_sample_share,
        class_share_flat=a.class_share_flat, versus=_csv_list(a.versus), area_to=a.area_to)


def main(argv=None) -> int:
    summary = simulate(parse_args(argv))
    print(summary_md(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
