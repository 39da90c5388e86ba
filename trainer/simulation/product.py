"""The platform's own loop, simulated (`--learner product`): the figures describe the product.

Labels arrive cfg.batch_size at a time, the fast loop's head re-ranking after each batch, and
at every count in cfg.finetune_at (the retrain schedule) a fresh fine-tune on all labels so far
(the default recipe) becomes the active version. Each row is what the product serves at that
point: the active version's macro-F1 on the evaluation rows (`<strategy>`), beside TF-IDF +
logistic regression on the same labels (`<strategy>:tfidf`).

Strategies: "random" (random picks, fine-tunes on the same schedule) and the head strategies
of run_head (e.g. "zero_shot+bal+st", the platform's default before class samples), whose
head works on the base encoder's stored embeddings throughout (the product), or, with the
modifier "+ver", on the active version's own embeddings once there is one: of
cfg.pool_subsample unlabeled candidates (what pool scoring embeds) and of the labeled items;
the head then ranks those candidates only, with the strategy's post-cold-start rule (no
zero-shot blend: the label descriptions live in the base encoder's space); with "+vrank", the
active version's own ranking of those candidates (margin, as pool scoring ranks the queue) is
labeled in order until the next fine-tune, the head only before the first version. Before the
first version all are the same. "+strat" keeps the head on the base encoder and, after the
cold start, takes half of each batch at random within the head's predicted classes
(with_stratified_picks): the product's fast loop with its default class_sample_share, so
"zero_shot+bal+st+strat" is the platform's default loop.

A fine-tune's results are cached under out_dir/finetunes by seed, labeled set and recipe, so
arms that share labels (before their first fine-tune) train once.
"""

import csv
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from trainer.simulation.inputs import (
    SimConfig,
    embeddings_of,
    load_data,
    quiet_transformers,
    sim_threads,
    train_config,
    zero_shot_scorer,
)
from trainer.simulation.learners import (
    STRATIFIED,
    ZERO_SHOT,
    cold_start_query,
    head_variant,
    scored_row,
    tfidf_row,
    with_stratified_picks,
)
from trainer.simulation.report import FIELDS

VERSION_SPACE, VERSION_RANKS = "ver", "vrank"
RECIPE_FIELDS = ("model", "epochs", "max_length", "train_batch_size", "learning_rate",
                 "val_fraction", "max_steps")  # what a fine-tune learns depends on
VERSION_STRATEGY = "margin"  # what pool scoring ranks by (strategy_names: the default's pool)


def product_variant(strategy: str) -> tuple[str, bool, bool, bool]:
    """"zero_shot+bal+st+ver" -> ("zero_shot+bal+st", head on the version's embeddings,
    False, False); "...+vrank" -> (..., False, the version's own ranking between fine-tunes,
    False); "...+strat" -> (..., False, False, half of each batch at random within the
    head's predicted classes)."""
    mods = strategy.split("+")
    in_version_space, version_ranks = VERSION_SPACE in mods, VERSION_RANKS in mods
    stratified = STRATIFIED in mods
    base = "+".join(m for m in mods if m not in (VERSION_SPACE, VERSION_RANKS, STRATIFIED))
    if in_version_space and version_ranks:
        raise ValueError(f"{strategy}: +ver and +vrank are two different rankings")
    if stratified and (in_version_space or version_ranks):
        raise ValueError(f"{strategy}: +strat mixes into the base encoder head's picks only")
    if base != "random":
        head_variant(base)  # raises on an unknown one
    elif in_version_space or version_ranks or stratified:
        raise ValueError(f"{strategy}: random picks use no version and no head")
    return base, in_version_space, version_ranks, stratified


def scored_candidates(cfg: SimConfig, seed: int, labeled: list[int], pool_size: int,
                      base: str) -> np.ndarray:
    """The unlabeled pool rows a new version scores (what pool scoring embeds); random picks
    need none."""
    if base == "random":
        return np.zeros(0, dtype=int)
    taken = set(labeled)
    unlabeled = np.array([i for i in range(pool_size) if i not in taken])
    return np.random.default_rng([seed, len(labeled)]).choice(
        unlabeled, min(len(unlabeled), cfg.pool_subsample), replace=False)


def finetune_cache(cfg: SimConfig, seed: int, labeled: list[int], cand: np.ndarray) -> Path:
    """Where the fine-tune of these labels (and its view of these candidates) is kept: one
    file per seed, labeled set, candidates and recipe (a run with other epochs, say, in the
    same out_dir trains afresh)."""
    recipe = {name: getattr(cfg, name) for name in RECIPE_FIELDS}
    key = hashlib.sha256(json.dumps([seed, sorted(labeled), cand.tolist(), recipe],
                                    sort_keys=True).encode()).hexdigest()
    return Path(cfg.out_dir) / "finetunes" / f"{key[:24]}.npz"


def _finetune(cfg: SimConfig, seed: int, labeled: list[int], pool_x, pool_y, eval_x, names,
              cand: np.ndarray) -> dict:
    """Fine-tune on the labeled items; the version's eval probabilities, its probabilities and
    embeddings of the candidates and its embeddings of the labeled items (cached by
    finetune_cache; no candidates: none of those)."""
    from trainer.models import load_classifier
    from trainer.predict import embed, predict_and_embed
    from trainer.train import train

    cache = finetune_cache(cfg, seed, labeled, cand)
    if cache.exists():
        return dict(np.load(cache))
    quiet_transformers()
    out = Path(tempfile.mkdtemp(prefix="al-product-"))
    try:
        config = train_config(cfg, seed, sim_threads(cfg))
        result = train(texts=[pool_x[i] for i in labeled], labels=[pool_y[i] for i in labeled],
                       label_names=names, config=config, output_dir=out)
        tokenizer, model = load_classifier(str(out), device=cfg.device)
        length = result.config["max_length"]
        proba, eval_emb = predict_and_embed(model, tokenizer, eval_x, max_length=length,
                                            batch_size=128, device=cfg.device)
        cand_proba = cand_emb = labeled_emb = np.zeros((0, 0), dtype=np.float32)
        if len(cand):
            cand_proba, cand_emb = predict_and_embed(model, tokenizer, [pool_x[i] for i in cand],
                                                     max_length=length, batch_size=128,
                                                     device=cfg.device)
            labeled_emb = embed(model, tokenizer, [pool_x[i] for i in labeled],
                                max_length=length, batch_size=128, device=cfg.device)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    found = {"proba": proba, "eval_emb": eval_emb, "cand_proba": cand_proba, "cand_emb": cand_emb,
             "labeled_emb": labeled_emb, "seconds": np.array(result.duration_seconds)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **found)
    return found


def _served_row(strategy, seed, r, n_labels, y_eval, proba, num_classes, seconds) -> dict:
    return {**scored_row(strategy, seed, r, n_labels, y_eval, proba, num_classes),
            "seconds": round(seconds, 2)}


def run_product(cfg: SimConfig, strategy: str, seed: int) -> Path:
    """One (strategy, seed) curve of the served model: out_dir/runs/<strategy>-<seed>.csv"""
    from trainer.head import SelfTraining, fit_head
    from trainer.strategies import head_query, predictions_stable, query
    from trainer.zero_shot import BlendedScorer, zero_shot_weight

    base, in_version_space, version_ranks, stratified = product_variant(strategy)
    runs = Path(cfg.out_dir) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    pool_x, pool_y, eval_x, eval_y, names = load_data(cfg)
    y_pool = np.array([names.index(v) for v in pool_y])
    y_eval = np.array([names.index(v) for v in eval_y])
    rng = np.random.default_rng(seed)
    schedule = sorted(set(cfg.finetune_at)) or [cfg.max_labels]
    rows: list[dict] = []

    if base == "random":
        labeled = [int(i) for i in rng.choice(len(pool_x), cfg.seed_size, replace=False)]
    else:
        head_base, self_train, _, after = head_variant(base)
        x_pool = embeddings_of(cfg, pool_x, cfg.pool)
        zero_shot = zero_shot_scorer(cfg, names) if head_base == ZERO_SHOT else None
        st = SelfTraining() if self_train else None
        stop_sample = np.random.default_rng(99).choice(len(pool_x), min(500, len(pool_x)),
                                                       replace=False)
        if zero_shot is not None:
            labeled = cold_start_query(cfg.zero_shot_picks, zero_shot, x_pool,
                                        np.zeros(0, dtype=int), np.zeros(0, dtype=int),
                                        cfg.seed_size, cfg, seed * 1000 + 999)
        else:
            labeled = [int(i) for i in rng.choice(len(pool_x), cfg.seed_size, replace=False)]
        phase = "diversity" if head_base in ("auto", ZERO_SHOT) else head_base
        previous = None
    space = None  # the active version's embeddings by pool row (+ver), once there is one
    version_queue: list[int] = []  # the active version's ranking of its candidates (+vrank)
    r = 0
    while True:
        started = time.perf_counter()
        if len(labeled) >= schedule[0]:  # the retrain schedule: a new active version
            cand = scored_candidates(cfg, seed, labeled, len(pool_x), base)
            found = _finetune(cfg, seed, labeled, pool_x, pool_y, eval_x, names, cand)
            rows.append(_served_row(strategy, seed, r, len(labeled), y_eval, found["proba"],
                                    len(names), time.perf_counter() - started))
            rows.append(tfidf_row(f"{strategy}:tfidf", seed, r, [pool_x[i] for i in labeled],
                                   [pool_y[i] for i in labeled], eval_x, eval_y, names))
            print(f"[{strategy} seed {seed}] {len(labeled)} labels: version macro-F1 "
                  f"{rows[-2]['macro_f1']:.4f}", flush=True)
            schedule = [n for n in schedule if n > len(labeled)]
            if not schedule or len(labeled) >= cfg.max_labels:
                break
            if version_ranks:
                picks = query(VERSION_STRATEGY, found["cand_proba"],
                              min(len(cand), schedule[0] - len(labeled)),
                              random_share=cfg.random_share, seed=seed * 1000 + r)
                version_queue = [int(cand[p.index]) for p in picks]
            if in_version_space:
                space = {int(i): v for i, v in zip(labeled, found["labeled_emb"], strict=True)}
                space.update({int(i): v for i, v in zip(cand, found["cand_emb"], strict=True)})
        n = min(cfg.batch_size, schedule[0] - len(labeled))
        if base == "random":
            taken = set(labeled)
            rest = np.array([i for i in range(len(pool_x)) if i not in taken])
            labeled = labeled + [int(i) for i in rng.choice(rest, n, replace=False)]
        elif version_queue:  # labelers take the active version's queue from the top
            labeled, version_queue = labeled + version_queue[:n], version_queue[n:]
        elif space is not None:  # the head on the active version's embeddings, its candidates
            rows_ids = np.array(sorted(space))
            x = np.stack([space[i] for i in rows_ids])
            at = {int(i): k for k, i in enumerate(rows_ids)}
            lab = np.array([at[i] for i in labeled])
            unl = np.setdiff1d(np.arange(len(rows_ids)), lab)
            head = fit_head(x[lab], y_pool[rows_ids[lab]], len(names), seed=seed,
                            x_unlabeled=x[unl] if st else None, self_training=st)
            picks = head_query(after, head, x, lab, y_pool[rows_ids[lab]], n,
                               random_share=cfg.random_share, seed=seed * 1000 + r)
            labeled = labeled + [int(rows_ids[p.index]) for p in picks]
        else:  # the head on the base encoder's embeddings (run_head's loop)
            lab = np.asarray(labeled)
            unl = np.setdiff1d(np.arange(len(pool_x)), lab)
            head = fit_head(x_pool[lab], y_pool[lab], len(names), seed=seed,
                            x_unlabeled=x_pool[unl] if st else None, self_training=st)
            model = (BlendedScorer(zero_shot, head, zero_shot_weight(len(lab)))
                     if zero_shot is not None else head)
            if phase == "diversity":
                current = model.predict_proba(x_pool[stop_sample]).argmax(axis=1)
                trusted, _ = predictions_stable(previous, current, len(names), cfg.trust_kappa)
                previous, phase = current, (after if trusted else phase)
            if phase == "diversity" and zero_shot is not None:
                labeled = labeled + cold_start_query(cfg.zero_shot_picks, model, x_pool, lab,
                                                      y_pool[lab], n, cfg, seed * 1000 + r)
            else:
                name = "embedding_kmeans" if phase == "diversity" else phase
                picks = [p.index for p in head_query(name, model, x_pool, lab, y_pool[lab], n,
                                                     random_share=cfg.random_share,
                                                     seed=seed * 1000 + r,
                                                     candidates=cfg.head_candidates)]
                if stratified and phase != "diversity":
                    picks = with_stratified_picks(
                        picks, model.predict_proba(x_pool[unl]), unl, n, seed * 1000 + r,
                        cfg.class_sample_share, cfg.class_share_flat)
                labeled = labeled + picks
        r += 1
    with (runs / f"{strategy}-{seed}.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    with (runs / f"{strategy}-{seed}.labels.csv").open("w", newline="") as f:
        writer = csv.writer(f)  # which pool rows the loop labeled, in order: what it picked
        writer.writerow(["order", "pool_row", "label"])
        writer.writerows((k, i, pool_y[i]) for k, i in enumerate(labeled, start=1))
    return runs / f"{strategy}-{seed}.csv"
