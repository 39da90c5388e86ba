"""Confident learning on out-of-fold probabilities (trainer.noise)."""

import numpy as np

from trainer import noise


def _clusters(n_per_class=60, classes=3, seed=0):
    """Well separated Gaussian clusters: features that know each row's true class."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6.0, size=(classes, 8))
    y = np.repeat(np.arange(classes), n_per_class)
    return centers[y] + rng.normal(size=(len(y), 8)), y


def _flip(y, indices, classes=3):
    noisy = y.copy()
    noisy[indices] = (noisy[indices] + 1) % classes
    return noisy


def test_out_of_fold_rows_come_from_a_model_that_did_not_see_them():
    features, y = _clusters()
    wrong = [3, 70, 150]
    noisy = _flip(y, wrong)
    proba = noise.out_of_fold_probabilities(features, noisy, n_classes=3)
    assert proba.shape == (len(y), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    # a model that had seen the flipped rows would fit them; out of fold they look wrong
    assert all(proba[i, noisy[i]] < 0.2 for i in wrong)
    assert (proba.argmax(axis=1) == y).mean() > 0.95


def test_the_flipped_labels_are_found_and_ranked_first():
    features, y = _clusters()
    wrong = [5, 64, 130, 177]
    noisy = _flip(y, wrong)
    proba = noise.out_of_fold_probabilities(features, noisy, n_classes=3)
    issues = noise.find_label_issues(noisy, proba)
    assert {issue.index for issue in issues[:len(wrong)]} == set(wrong)
    top = issues[0]
    assert top.given == noisy[top.index] and top.suggested == y[top.index]
    assert top.self_confidence < top.suggested_probability
    ranked = noise.rank_by_self_confidence(noisy, proba)
    assert {issue.index for issue in ranked[:len(wrong)]} == set(wrong)
    assert len(ranked) == len(y)


def test_clean_labels_raise_few_flags():
    features, y = _clusters(seed=1)
    proba = noise.out_of_fold_probabilities(features, y, n_classes=3)
    assert len(noise.find_label_issues(y, proba)) <= 2


def test_a_rare_class_gets_fewer_folds_and_a_missing_class_probability_zero():
    features, y = _clusters(n_per_class=20, classes=2)
    y = y.copy()
    proba = noise.out_of_fold_probabilities(features, y, n_classes=3)  # class 2 never given
    assert np.all(proba[:, 2] == 0)
    y[:18] = 1  # class 0 keeps 2 rows: two folds, not five
    proba = noise.out_of_fold_probabilities(features, y, n_classes=3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_sparse_features_work_too():
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [f"great lovely {i}" for i in range(20)] + [f"awful broken {i}" for i in range(20)]
    y = np.array([1] * 20 + [0] * 20)
    y[0] = 0
    features = TfidfVectorizer().fit_transform(texts)
    proba = noise.out_of_fold_probabilities(features, y, n_classes=2)
    assert noise.rank_by_self_confidence(y, proba)[0].index == 0


def test_one_class_has_nothing_to_find():
    features, _ = _clusters(n_per_class=10, classes=1)
    assert noise.find_label_issues([0] * 10, np.ones((10, 1))) == []


def test_the_platform_judge_averages_embeddings_and_text_out_of_fold():
    features, y = _clusters(n_per_class=20)
    texts = [f"{['bad', 'meh', 'good'][label]} item {i}" for i, label in enumerate(y)]
    noisy = _flip(y, [4, 30])
    proba = noise.judged_out_of_fold(features, texts, noisy, n_classes=3)
    expected = (noise.out_of_fold_probabilities(features, noisy, n_classes=3)
                + noise.out_of_fold_probabilities(noise.text_features(texts), noisy,
                                                  n_classes=3)) / 2
    np.testing.assert_allclose(proba, expected)
    assert {issue.index for issue in noise.find_label_issues(noisy, proba)[:2]} == {4, 30}


def _check_in_child(queue):
    features, y = _clusters()
    noisy = _flip(y, [5, 64])
    try:
        proba = noise.out_of_fold_probabilities(features, noisy, n_classes=3)
        queue.put(sorted(issue.index for issue in noise.find_label_issues(noisy, proba))[:2])
    except BaseException as exc:  # noqa: BLE001 - the parent reports it
        queue.put(repr(exc))


def test_the_check_runs_inside_a_daemonic_process_as_in_a_celery_prefork_child(monkeypatch):
    """Celery's prefork children are daemonic and may not start a multiprocessing.Pool, which
    cleanlab does by default whenever it sees more than one CPU (it crashed every real worker)."""
    import multiprocessing

    monkeypatch.setattr(multiprocessing, "cpu_count", lambda: 4)  # the child is forked: it sees 4
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_check_in_child, args=(queue,), daemon=True)
    child.start()
    result = queue.get(timeout=120)
    child.join(30)
    assert result == [5, 64]
