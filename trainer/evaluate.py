"""Metrics of a model's predictions (trainer.predict makes them)."""

from collections.abc import Sequence


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], label_names: list[str]
) -> dict:
    """Per-class precision/recall/F1, macro-F1, accuracy and the confusion matrix.

    y_true/y_pred are label indices into label_names. Rows of the matrix are true labels.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    indices = list(range(len(label_names)))
    if len(y_true) == 0:
        return {"macro_f1": 0.0, "accuracy": 0.0, "support": 0, "per_class": {},
                "confusion_matrix": [], "labels": list(label_names)}
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=indices, zero_division=0
    )
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(label_names)
    }
    present = [i for i in indices if support[i] > 0]  # macro over classes seen in y_true
    macro_f1 = float(sum(f1[i] for i in present) / len(present)) if present else 0.0
    return {
        "macro_f1": macro_f1,
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "support": len(y_true),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=indices).tolist(),
        "labels": list(label_names),
    }


# Below these an F1 or accuracy is mostly noise: on 1 item it is 0 or 1, and for a class
# seen twice one item moves its recall by half.
MIN_RELIABLE_GOLD = 30  # evaluation items (gold; the validation split when there is none)
MIN_RELIABLE_PER_CLASS = 5  # evaluation items of every class


def metrics_reliability(metrics: dict) -> dict:
    """Can the figures in `metrics` (classification_metrics, plus "evaluated_on") be read?

    {"n": items evaluated on (None if unknown), "on": "gold" / "validation" / "",
     "reliable": bool, "reason": why not ("" when reliable)}.
    """
    n, on = metrics.get("support"), metrics.get("evaluated_on", "")
    per_class = metrics.get("per_class") or {}
    thin = sorted((int(m.get("support", 0)), name) for name, m in per_class.items()
                  if int(m.get("support", 0)) < MIN_RELIABLE_PER_CLASS)
    if n is None:
        reason = "the number of evaluation items was not recorded"
    elif n < MIN_RELIABLE_GOLD:
        reason = f"only {n} evaluation item{'s' if n != 1 else ''} ({MIN_RELIABLE_GOLD} needed)"
    elif thin:
        listed = ", ".join(f"{name} {count}" for count, name in thin)
        reason = f"fewer than {MIN_RELIABLE_PER_CLASS} evaluation items of a class ({listed})"
    else:
        reason = ""
    return {"n": n, "on": on, "reliable": not reason, "reason": reason}
