"""May the version a run just trained replace the active one? (docs/training.md, "Activation")

The two versions are paired on the same items and compared with trainer.compare (a paired
bootstrap of macro-F1, fixed seed): on the project's gold items when there are at least
`MIN_ITEMS`; else on the run's validation items that the active version did not train on
either; else the new version is activated as before, and the decision says no comparison was
possible. The active version's predictions on gold are the ones it stored when it was
evaluated; a version from before this rule (none stored), or gold added since, is predicted
with it here and stored on it.

`activation_decide` returns the decision stored in ModelVersion.activation:
{"activated", "reason" (plain words), "compared_with" (version number or None),
 "on" ("gold" / "validation" / ""), "comparison" (trainer.compare.Comparison or {}), "rule"}.
"""

import logging

from django.conf import settings

from annotator.ml.artifacts import model_version_local_path
from annotator.models import ModelVersion, Project
from annotator.selectors.training import gold_labels, version_training_labels
from trainer.compare import CONFIDENCE, MIN_ITEMS, RESAMPLES, SEED, TOLERANCE, compare_predictions

logger = logging.getLogger(__name__)

RULE = {"min_items": MIN_ITEMS, "confidence": CONFIDENCE, "tolerance": TOLERANCE,
        "resamples": RESAMPLES, "seed": SEED}


def _decision(activated: bool, reason: str, *, active: ModelVersion | None = None, on: str = "",
              comparison: dict | None = None) -> dict:
    return {"activated": activated, "reason": reason,
            "compared_with": active.version if active else None, "on": on,
            "comparison": comparison or {}, "rule": RULE}


def _predict(version: ModelVersion, texts: list[str]) -> list[int]:
    """The version's predicted label index of each text (the platform's one prediction path)."""
    from trainer.predict import load_scorer, predict_proba

    tokenizer, model = load_scorer(str(model_version_local_path(version)),
                                   device=settings.TRAINING_DEVICE)
    proba = predict_proba(model, tokenizer, texts, max_length=version.max_length,
                          device=settings.TRAINING_DEVICE)
    return proba.argmax(axis=1).tolist()


def _active_gold_predictions(active: ModelVersion, rows: list[tuple[int, str, int, int]]
                             ) -> list[int]:
    """The active version's predictions of these gold rows: the ones it stored, the rest
    predicted now and stored on it (next time they are there)."""
    stored = {int(item_id): int(label) for item_id, label in active.gold_predictions}
    missing = [(item_id, text) for item_id, text, _, _ in rows if item_id not in stored]
    if missing:
        logger.info("predicting %s gold items with v%s to compare", len(missing), active.version)
        predicted = _predict(active, [text for _, text in missing])
        stored.update(zip([item_id for item_id, _ in missing], predicted, strict=True))
        ModelVersion.objects.filter(id=active.id).update(
            gold_predictions=[[i, label] for i, label in sorted(stored.items())])
    return [stored[item_id] for item_id, _, _, _ in rows]


def _held_out(active: ModelVersion, validation: list[tuple[int, str, int, int]]) -> list:
    """The run's validation items the active version did not train on either."""
    if active.distilled_from_id:  # a student learned its teacher on every pool text
        return []
    seen = {item_id for item_id, _ in version_training_labels(active)}
    return [row for row in validation if row[0] not in seen]


def _compare(active: ModelVersion, on: str, truth: list[int], new: list[int], old: list[int]):
    result = compare_predictions(truth, new, old, len(active.label_names))
    where = "gold items" if on == "gold" else "validation items neither trained on"
    figures = (f"macro-F1 {result.new_macro_f1:.3f} vs {result.old_macro_f1:.3f} of "
               f"v{active.version} on the same {result.n} {where}")
    if result.worse:
        return _decision(False, f"not activated: {figures}", active=active, on=on,
                         comparison=result.to_dict())
    return _decision(True, f"activated: {figures}", active=active, on=on,
                     comparison=result.to_dict())


def activation_decide(*, project: Project, active: ModelVersion | None,
                      gold_predictions: dict[int, int],
                      validation: list[tuple[int, str, int, int]]) -> dict:
    """Should the new version replace `active`? See the module docstring.

    gold_predictions: {gold item id: the new version's predicted label index};
    validation: (item id, text, label index, the new version's prediction) of the run's
    validation split. Label indices are into project.label_names.
    """
    if active is None:
        return _decision(True, "activated: no version was active")
    if active.label_names != project.label_names:
        return _decision(True, f"activated without a comparison: v{active.version} has other "
                               "labels", active=active)
    index = {name: i for i, name in enumerate(project.label_names)}
    gold = [(item_id, text, index[label], gold_predictions[item_id])
            for item_id, text, label in gold_labels(project) if item_id in gold_predictions]
    rows, on = (gold, "gold") if len(gold) >= MIN_ITEMS else (_held_out(active, validation),
                                                               "validation")
    if len(rows) < MIN_ITEMS:
        return _decision(True, f"activated without a comparison: only {len(gold)} gold items "
                               f"and {len(rows)} validation items v{active.version} did not "
                               f"train on ({MIN_ITEMS} needed)", active=active)
    try:
        old = (_active_gold_predictions(active, rows) if on == "gold"
               else _predict(active, [text for _, text, _, _ in rows]))
    except Exception:  # the active version would not run: serving it fails as well
        logger.exception("could not run v%s to compare the new version with it", active.version)
        return _decision(True, f"activated without a comparison: v{active.version} could not "
                               "be run (the details are in the worker's log)", active=active)
    return _compare(active, on, [y for _, _, y, _ in rows], [p for _, _, _, p in rows], old)
