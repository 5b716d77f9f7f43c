"""Zero-shot evaluation: metrics against hand-computed values, both formulations, the untuned
baseline, the exported head, and input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from modelkit import NAMES, make_tiny_model, toy_data

from hubselect.core.errors import HubselectError
from hubselect.data.encoder import resolve_model
from hubselect.models.evaluation import (
    EvalResult,
    classification_metrics,
    evaluate,
    evaluate_baseline,
    gain,
    score_texts,
)
from hubselect.models.training import FinetuneConfig, finetune
from hubselect.models.zeroshot import (
    DescriptionClassifier,
    HeadClassifier,
    export_head,
    label_descriptions,
    read_metadata,
)


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture(scope="module")
def head_model(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A head tuned on the toy source (labels negative/positive)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HUBSELECT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        texts, labels = toy_data(80, 0)
        config = FinetuneConfig(model=tiny_model, learning_rate=5e-3, epochs=8, batch_size=8,
                                max_length=32, patience=0)
        return finetune("toy", None, texts, labels, NAMES, config, formulation="head",
                        progress=False).path


def test_metrics_match_hand_computed_values():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    accuracy, macro_f1, per_class = classification_metrics(gold, pred, ["a", "b", "c"])
    assert accuracy == pytest.approx(4 / 6)
    # a: P 2/2, R 2/3, F1 0.8; b: P 1/2, R 1/2, F1 0.5; c: P 1/2, R 1/1, F1 2/3
    assert per_class["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8,
                                            "support": 3})
    assert per_class["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5,
                                            "support": 2})
    assert per_class["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3,
                                            "support": 1})
    assert macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    # a label never predicted nor present counts as F1 0 in the macro average
    _, macro_f1, per_class = classification_metrics(["a", "a"], ["a", "a"], ["a", "b"])
    assert per_class["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert macro_f1 == pytest.approx(0.5)


def test_gain():
    def result(acc: float) -> EvalResult:
        return EvalResult(acc, acc, {}, 10, 1.0, 10.0, "description", "m")

    assert gain(result(0.8), result(0.65)) == pytest.approx(0.15)
    assert gain(0.5, 0.6) == pytest.approx(-0.1)


def test_baseline_description_matching_is_consistent(tiny_model):
    texts, labels = toy_data(30, 1)
    target = ["Negative", "Positive"]
    result = evaluate(resolve_model(tiny_model), texts, labels, target, max_length=32)
    assert result.formulation == "description" and result.n == 30
    assert len(result.predictions) == 30 and set(result.predictions) <= set(target)
    # by hand: cosine of normalised mean-pooled embeddings, argmax over the target labels
    from hubselect.data.encoder import encode, load_encoder

    tokenizer, encoder = load_encoder(resolve_model(tiny_model))
    emb = encode(texts, tokenizer, encoder, max_length=32)
    descs = label_descriptions(target)
    lab = encode([descs[n] for n in target], tokenizer, encoder, max_length=32)
    expected = [target[i] for i in (emb @ lab.T).argmax(1)]
    assert result.predictions == expected
    gold = ["Positive" if y == "positive" else "Negative" for y in labels]
    assert result.accuracy == pytest.approx(np.mean(np.array(expected) == np.array(gold)))
    assert sum(row["support"] for row in result.per_class.values()) == 30
    assert result.examples_per_second > 0 and result.seconds > 0
    assert json.dumps(result.to_dict())  # JSON-friendly
    assert result.metrics("target_")["target_accuracy"] == result.accuracy


def test_named_metrics_land_under_metrics_and_the_default_output_is_unchanged(tiny_model):
    texts, labels = toy_data(12, 5)
    plain = evaluate(resolve_model(tiny_model), texts, labels, NAMES, max_length=32)
    assert plain.extra_metrics == {} and "metrics" not in plain.to_dict()
    assert set(plain.to_dict()) == {"accuracy", "macro_f1", "per_class", "n", "seconds",
                                    "examples_per_second", "formulation", "model"}
    named = evaluate_baseline(texts, labels, NAMES, model=tiny_model, max_length=32,
                              metrics="f1,accuracy")
    assert named.predictions == plain.predictions
    assert named.to_dict()["metrics"] == {"f1": named.macro_f1, "accuracy": named.accuracy}
    assert named.metrics("t_")["t_f1"] == named.macro_f1
    result, _ = score_texts(DescriptionClassifier(tiny_model, NAMES, max_length=32), texts,
                            labels, metrics=["accuracy"])
    assert result.extra_metrics == {"accuracy": plain.accuracy}
    with pytest.raises(HubselectError, match="metric name 'f 1' is malformed"):
        evaluate(resolve_model(tiny_model), texts, labels, NAMES, metrics="f 1")


def test_description_override_changes_the_label_texts(tiny_model):
    texts, labels = toy_data(10, 2)
    base = DescriptionClassifier(tiny_model, NAMES, max_length=32)
    custom = DescriptionClassifier(tiny_model, NAMES, {"positive": "I love it.",
                                                       "negative": "I hate it."},
                                   max_length=32)
    assert not np.allclose(base.label_embeddings(), custom.label_embeddings())
    result = evaluate(resolve_model(tiny_model), texts, labels, NAMES,
                      descriptions={"positive": "I love it.", "negative": "I hate it."},
                      max_length=32)
    assert result.predictions == custom.predict(texts)


def test_head_model_is_aligned_to_the_target_label_order(head_model):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts, labels = toy_data(40, 3)
    target = ["POSITIVE", "Negative"]  # other order and case than the source
    result = evaluate(head_model, texts, labels, target, max_length=32)
    assert result.formulation == "head"
    tokenizer = AutoTokenizer.from_pretrained(head_model)
    model = AutoModelForSequenceClassification.from_pretrained(head_model).eval()
    with torch.inference_mode():
        logits = model(**tokenizer(texts, padding=True, truncation=True, max_length=32,
                                   return_tensors="pt")).logits.numpy()
    source_pred = [model.config.id2label[i] for i in logits.argmax(1)]
    assert [p.lower() for p in result.predictions] == source_pred
    assert result.accuracy >= 0.9
    gold = [t.upper() if t == "positive" else "Negative" for t in labels]
    assert result.accuracy == pytest.approx(np.mean(np.array(result.predictions) ==
                                                    np.array(gold)))


def test_exported_head_has_target_label_names_and_reordered_rows(head_model, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = export_head(head_model, ["Positive", "Negative"], tmp_path / "exported")
    config = json.loads((Path(out) / "config.json").read_text())
    assert config["id2label"] == {"0": "Positive", "1": "Negative"}
    assert read_metadata(out)["label_names"] == ["Positive", "Negative"]
    assert read_metadata(out)["source_label_names"] == NAMES
    texts, _ = toy_data(8, 4)
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        original = AutoModelForSequenceClassification.from_pretrained(head_model).eval()(
            **batch).logits
        exported = AutoModelForSequenceClassification.from_pretrained(out).eval()(
            **batch).logits
    # rows reordered to the target's labels, logits divided by the folded calibration temperature
    temperature = read_metadata(out)["folded_temperature"]
    assert torch.allclose(exported, original[:, [1, 0]] / temperature, atol=1e-5)
    # a mapping lets a target with other names use the head
    mapped = export_head(head_model, ["good", "bad"], tmp_path / "mapped",
                         mapping={"good": "positive", "bad": "negative"})
    assert json.loads((Path(mapped) / "config.json").read_text())["id2label"] == {
        "0": "good", "1": "bad"}
    assert HeadClassifier(mapped, ["good", "bad"]).predict(texts) == [
        {"positive": "good", "negative": "bad"}[p]
        for p in HeadClassifier(head_model, NAMES).predict(texts)]
    with pytest.raises(HubselectError, match="mapping"):
        export_head(head_model, ["sports", "world"], tmp_path / "bad")


def test_evaluation_errors(tiny_model, head_model):
    base = resolve_model(tiny_model)
    with pytest.raises(HubselectError, match="no texts"):
        evaluate(base, [], [], NAMES)
    with pytest.raises(HubselectError, match="'neutral' is not one of"):
        evaluate(base, ["a", "b"], ["positive", "neutral"], NAMES)
    with pytest.raises(HubselectError, match="--label-names"):
        evaluate(base, ["a"], ["positive"], [])
    with pytest.raises(HubselectError, match="one gold label per text"):
        evaluate(base, ["a", "b"], ["positive"], NAMES)
    with pytest.raises(HubselectError, match="formulation=description"):
        evaluate(head_model, ["a"], ["sports"], ["sports", "world"])
    with pytest.raises(HubselectError, match="cannot evaluate"):
        evaluate("/nonexistent/folder", ["a"], ["positive"], NAMES)
    # integer gold labels index the target label names
    assert evaluate(base, ["a", "b"], [0, 1], NAMES, max_length=32).n == 2
