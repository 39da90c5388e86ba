"""Metrics and batched prediction."""

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


def predict_proba(tokenizer, model, texts: Sequence[str], *, max_length: int = 128,
                  batch_size: int = 64, device: str = ""):
    """Class probabilities (numpy, len(texts) x num_labels), length-bucketed batches."""
    import numpy as np
    import torch

    from trainer.data import pad_batch

    device = device or str(next(model.parameters()).device)
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    probs = np.zeros((len(encoded), model.config.num_labels), dtype=np.float32)
    autocast = device.startswith("cuda")
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = pad_batch([encoded[i] for i in idx], tokenizer.pad_token_id or 0)
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                logits = model(**batch).logits
            probs[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return probs
