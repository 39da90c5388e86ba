"""One learning curve per (strategy, seed): run_finetune trains a fresh model every round,
run_head refits the fast loop's embedding head after every batch. Each writes its rows to
out_dir/runs/<strategy>-<seed>.csv (report.FIELDS)."""

import csv
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from trainer.data import MAX_LENGTH_CAP
from trainer.simulation.inputs import (
    SimConfig,
    embeddings_of,
    load_data,
    quiet_transformers,
    round_count,
    sim_threads,
    train_config,
    zero_shot_scorer,
)
from trainer.simulation.report import FIELDS
from trainer.strategies import HEAD_STRATEGIES, query, select_seed
from trainer.strategy_names import COLD_START_ZERO_SHOT

BASELINE_AT = (100, 200, 500, 1000)  # head learner: TF-IDF + LR on the same labels here
# head learner: the cold start ranked by the labels' descriptions (trainer.zero_shot), the
# evaluated model the zero-shot scorer blended with the head by the handover rule
ZERO_SHOT = COLD_START_ZERO_SHOT  # the simulation's name of the platform's cold start
STRATIFIED = "strat"  # modifier: the product's class samples after the cold start


def _initial_labels(cfg: SimConfig, pool_x: list[str], seed: int) -> list[int]:
    """The same seed set for every strategy of one seed (a fair comparison)."""
    rng = np.random.default_rng(seed)
    if cfg.seed_selection == "cluster":
        from trainer.predict import embed_with_base

        sample = rng.choice(len(pool_x), min(len(pool_x), cfg.pool_subsample), replace=False)
        emb = embed_with_base([pool_x[i] for i in sample], model_name=cfg.model,
                              max_length=cfg.max_length or MAX_LENGTH_CAP, device=cfg.device)
        return [int(sample[i]) for i in select_seed(emb, cfg.seed_size, seed=seed)]
    return [int(i) for i in rng.choice(len(pool_x), cfg.seed_size, replace=False)]


def run_finetune(cfg: SimConfig, strategy: str, seed: int) -> Path:
    """One (strategy, seed) learning curve; resumes from out_dir/runs/<strategy>-<seed>.*"""
    from trainer.models import load_classifier
    from trainer.predict import predict_and_embed
    from trainer.train import train

    quiet_transformers()
    runs = Path(cfg.out_dir) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    rows_path, state_path = runs / f"{strategy}-{seed}.csv", runs / f"{strategy}-{seed}.json"
    pool_x, pool_y, eval_x, eval_y, label_names = load_data(cfg)
    if state_path.exists():
        state = json.loads(state_path.read_text())
    else:
        state = {"round": 0, "labeled": _initial_labels(cfg, pool_x, seed)}
        rows_path.write_text(",".join(FIELDS) + "\n")
    threads = sim_threads(cfg)
    n_rounds = round_count(cfg)
    workdir = Path(tempfile.mkdtemp(prefix=f"al-{strategy}-{seed}-"))
    try:
        while state["round"] <= n_rounds:
            r, labeled = state["round"], state["labeled"]
            started = time.perf_counter()
            config = train_config(cfg, seed, threads)
            out = workdir / f"round-{r}"
            result = train(texts=[pool_x[i] for i in labeled],
                           labels=[pool_y[i] for i in labeled], label_names=label_names,
                           config=config, output_dir=out, eval_texts=eval_x,
                           eval_labels=eval_y)
            taken = set(labeled)
            unlabeled = np.array([i for i in range(len(pool_x)) if i not in taken])
            if r < n_rounds and len(unlabeled):
                rng = np.random.default_rng([seed, r])
                cand = rng.choice(unlabeled, min(len(unlabeled), cfg.pool_subsample),
                                  replace=False)
                proba = emb = np.zeros((len(cand), len(label_names)))
                if strategy != "random":
                    tokenizer, model = load_classifier(str(out), device=cfg.device)
                    proba, emb = predict_and_embed(model, tokenizer, [pool_x[i] for i in cand],
                                                   max_length=result.config["max_length"],
                                                   batch_size=128, device=cfg.device)
                    del model
                picks = query(strategy, proba, cfg.batch_size, random_share=cfg.random_share,
                              embeddings=emb, seed=seed * 1000 + r)
                labeled = labeled + [int(cand[p.index]) for p in picks]
            shutil.rmtree(out, ignore_errors=True)
            row = {"strategy": strategy, "seed": seed, "round": r, "labels": len(state["labeled"]),
                   "macro_f1": round(result.metrics["macro_f1"], 5),
                   "accuracy": round(result.metrics["accuracy"], 5),
                   "seconds": round(time.perf_counter() - started, 2)}
            with rows_path.open("a", newline="") as f:
                csv.DictWriter(f, FIELDS).writerow(row)
            state = {"round": r + 1, "labeled": labeled}
            state_path.write_text(json.dumps(state))
            print(f"[{strategy} seed {seed}] round {r}: {row['labels']} labels, "
                  f"macro-F1 {row['macro_f1']:.4f} ({row['seconds']} s)", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows_path


def head_variant(strategy: str) -> tuple[str, bool, bool, str]:
    """"auto+bal+st" -> ("auto", self-training, anchor subsampling, the uncertainty strategy
    "auto" switches to). Modifiers: st = self-training, anchor = AnchorAL subsampling,
    bal = balanced_ties instead of breaking_ties after the cold start, strat = the product's
    class samples after the cold start (with_stratified_picks; read by the callers). The
    base "zero_shot"
    is "auto" with the zero-shot cold start (cfg.zero_shot_picks on the labels'
    descriptions instead of k-means) and the zero-shot scorer blended into every model."""
    base, *mods = strategy.split("+")
    unknown = set(mods) - {"st", "anchor", "bal", STRATIFIED}
    if base not in (*HEAD_STRATEGIES, ZERO_SHOT) or unknown:
        raise ValueError(f"unknown head strategy {strategy!r}")
    return base, "st" in mods, "anchor" in mods, \
        "balanced_ties" if "bal" in mods else "breaking_ties"


def with_stratified_picks(picks: list[int], proba: np.ndarray, unlabeled: np.ndarray,
                          n: int, seed: int, share: float = 0.5, flat: bool = False) -> list[int]:
    """The first n - share * n of the head's picks, then trainer.strategies' class_samples
    of the other unlabeled rows (the product's with_class_samples, in batch order); half the
    share where the head predicts every class often (class_sample_share, as the product;
    flat: the same share whatever the classes). proba: the head's, of each row of unlabeled."""
    from trainer.strategies import class_sample_share, class_samples

    predicted = proba.argmax(axis=1)
    if not flat:
        share = class_sample_share(predicted, proba.shape[1], share)
    k = int(round(n * share))
    kept = list(picks[: n - k])
    free = ~np.isin(unlabeled, kept)
    return kept + class_samples(predicted[free], unlabeled[free], n - len(kept), seed)


def run_head(cfg: SimConfig, strategy: str, seed: int) -> Path:
    """One learning curve of the fast loop: the embedding head refit after every batch.

    Every round costs a logistic regression on base-encoder embeddings (cached), so a
    curve with a point every 20 labels takes seconds. "auto" is the product's cold start:
    k-means (small-text EmbeddingKMeans) batches until two consecutive heads agree on a
    fixed sample with kappa >= trust_kappa, then breaking ties. "zero_shot" is the same
    with the labels' descriptions in place of k-means: the seed and the cold-start batches
    are picked by cfg.zero_shot_picks on the zero-shot scorer (trainer.zero_shot), blended
    into every model by the handover rule, and a row at 0 labels measures it alone. Rows at
    finetune_at label counts also fine-tune the real model on the same labels
    ("<strategy>:finetune"), and rows at BASELINE_AT fit TF-IDF + logistic regression on
    them ("<strategy>:tfidf").
    """
    from trainer.head import SelfTraining, fit_head
    from trainer.strategies import head_query, predictions_stable
    from trainer.zero_shot import HANDOVER_LABELS, BlendedScorer, zero_shot_weight

    base, self_train, anchor, after = head_variant(strategy)
    stratified = STRATIFIED in strategy.split("+")
    runs = Path(cfg.out_dir) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    rows_path = runs / f"{strategy}-{seed}.csv"
    pool_x, pool_y, eval_x, eval_y, names = load_data(cfg)
    x_pool = embeddings_of(cfg, pool_x, cfg.pool)
    x_eval = embeddings_of(cfg, eval_x, cfg.eval)
    y_pool = np.array([names.index(v) for v in pool_y])
    y_eval = np.array([names.index(v) for v in eval_y])
    rng = np.random.default_rng(seed)
    stop_sample = np.random.default_rng(99).choice(len(pool_x), min(500, len(pool_x)),
                                                   replace=False)
    st = SelfTraining() if self_train else None
    phase = "diversity" if base in ("auto", ZERO_SHOT) else base
    cold_start = "embedding_kmeans"
    zero_shot, rows = None, []
    if base == ZERO_SHOT:
        zero_shot = zero_shot_scorer(cfg, names)
        cold_start = cfg.zero_shot_picks
        rows.append(scored_row(strategy, seed, -1, 0, y_eval,
                                zero_shot.predict_proba(x_eval), len(names)))
        labeled = cold_start_query(cold_start, zero_shot, x_pool, np.zeros(0, dtype=int),
                                    np.zeros(0, dtype=int), cfg.seed_size, cfg,
                                    seed * 1000 + 999)
    elif base == "auto":
        cand = rng.choice(len(pool_x), min(len(pool_x), 5000), replace=False)
        labeled = [int(cand[i]) for i in select_seed(x_pool[cand], cfg.seed_size, seed=seed)]
    else:
        labeled = [int(i) for i in rng.choice(len(pool_x), cfg.seed_size, replace=False)]
    previous, weights = None, []
    for r in range(round_count(cfg) + 1):
        started = time.perf_counter()
        lab = np.asarray(labeled)
        unl = np.setdiff1d(np.arange(len(pool_x)), lab)
        head = fit_head(x_pool[lab], y_pool[lab], len(names), seed=seed,
                        x_unlabeled=x_pool[unl] if st else None, self_training=st)
        if zero_shot is not None:
            weight = zero_shot_weight(len(lab), handover=HANDOVER_LABELS
                                      if cfg.handover is None else cfg.handover)
            model = BlendedScorer(zero_shot, head, weight)
            weights.append(f"{len(lab)}:{weight:.2f}")
        else:
            model = head
        row = scored_row(strategy, seed, r, len(labeled), y_eval, model.predict_proba(x_eval),
                          len(names))
        if phase == "diversity":
            current = model.predict_proba(x_pool[stop_sample]).argmax(axis=1)
            trusted, _ = predictions_stable(previous, current, len(names), cfg.trust_kappa)
            previous, phase = current, (after if trusted else phase)
        if r < round_count(cfg):
            if phase == "diversity" and zero_shot is not None:
                labeled = labeled + cold_start_query(cold_start, model, x_pool, lab,
                                                      y_pool[lab], cfg.batch_size, cfg,
                                                      seed * 1000 + r)
            else:
                name = cold_start if phase == "diversity" else phase
                picks = head_query(name, model, x_pool, lab, y_pool[lab], cfg.batch_size,
                                   random_share=cfg.random_share, seed=seed * 1000 + r,
                                   candidates=500 if anchor else cfg.head_candidates,
                                   subsampling="anchor" if anchor else "random")
                picks = [p.index for p in picks]
                if stratified and phase != "diversity":
                    picks = with_stratified_picks(
                        picks, model.predict_proba(x_pool[unl]), unl, cfg.batch_size,
                        seed * 1000 + r, cfg.class_sample_share, cfg.class_share_flat)
                labeled = labeled + picks
        row["seconds"] = round(time.perf_counter() - started, 3)
        rows.append(row)
        if row["labels"] in BASELINE_AT:  # the simple baseline on the very same labels
            rows.append(tfidf_row(f"{strategy}:tfidf", seed, r, [pool_x[i] for i in lab],
                                   [pool_y[i] for i in lab], eval_x, eval_y, names))
        if row["labels"] in cfg.finetune_at:
            rows.append(_finetune_row(cfg, f"{strategy}:finetune", seed, r,
                                      [pool_x[i] for i in lab], [pool_y[i] for i in lab],
                                      eval_x, eval_y, names))
    with rows_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"[{strategy} seed {seed}] {rows[-1]['labels']} labels, macro-F1 "
          f"{rows[-1]['macro_f1']:.4f}" + (f"; zero-shot weight by labels {' '.join(weights)}"
                                           if weights else ""), flush=True)
    return rows_path


def cold_start_query(name, model, x_pool, labeled, y, n, cfg, seed) -> list[int]:
    """The zero-shot cold start's next n picks: "confident" (trainer.zero_shot.confident_picks
    on the model's probabilities, with the random control share) or a head_query strategy."""
    from trainer.strategies import Pick, control_count, head_query, insert_random_control
    from trainer.zero_shot import confident_picks

    if name != "confident":
        return [p.index for p in head_query(name, model, x_pool, labeled, y, n,
                                            random_share=cfg.random_share, seed=seed,
                                            candidates=cfg.head_candidates)]
    unlabeled = np.setdiff1d(np.arange(len(x_pool)), labeled)
    n_control = control_count(n, cfg.random_share)
    proba = model.predict_proba(x_pool[unlabeled])
    chosen = unlabeled[confident_picks(proba, n - n_control)]
    picks = [Pick(int(i), "zero_shot", 0.0) for i in chosen]
    rest = np.setdiff1d(unlabeled, chosen)
    picks = insert_random_control(picks, rest, n, n_control, np.random.default_rng(seed),
                                  lambda i: 0.0)
    return [p.index for p in picks]


def scored_row(strategy, seed, r, n_labels, y_eval, proba, num_classes) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    pred = np.asarray(proba).argmax(axis=1)
    return {"strategy": strategy, "seed": seed, "round": r, "labels": n_labels,
            "macro_f1": round(float(f1_score(y_eval, pred, average="macro",
                                             labels=list(range(num_classes)),
                                             zero_division=0)), 5),
            "accuracy": round(float(accuracy_score(y_eval, pred)), 5), "seconds": 0.0}


def tfidf_row(strategy, seed, r, texts, labels, eval_x, eval_y, names) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    from trainer.baseline import tfidf_logreg

    started = time.perf_counter()
    pred = tfidf_logreg(texts, labels).predict(eval_x) if len(set(labels)) > 1 \
        else [labels[0]] * len(eval_x)
    return {"strategy": strategy, "seed": seed, "round": r, "labels": len(texts),
            "macro_f1": round(float(f1_score(eval_y, pred, average="macro", labels=names,
                                             zero_division=0)), 5),
            "accuracy": round(float(accuracy_score(eval_y, pred)), 5),
            "seconds": round(time.perf_counter() - started, 2)}


def _finetune_row(cfg, strategy, seed, r, texts, labels, eval_x, eval_y, names) -> dict:
    from trainer.train import train

    quiet_transformers()
    started = time.perf_counter()
    out = Path(tempfile.mkdtemp(prefix="al-ft-"))
    try:
        config = train_config(cfg, seed)
        result = train(texts=texts, labels=labels, label_names=names, config=config,
                       output_dir=out, eval_texts=eval_x, eval_labels=eval_y)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"[{strategy} seed {seed}] {len(texts)} labels: fine-tune macro-F1 "
          f"{result.metrics['macro_f1']:.4f}", flush=True)
    return {"strategy": strategy, "seed": seed, "round": r, "labels": len(texts),
            "macro_f1": round(result.metrics["macro_f1"], 5),
            "accuracy": round(result.metrics["accuracy"], 5),
            "seconds": round(time.perf_counter() - started, 2)}
