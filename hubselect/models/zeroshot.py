"""The two zero-shot formulations: label-description matching and a label-aligned head.

**Description matching** works for any source/target pair. A text and a short description of
each label ("This text is about {label}.") are embedded with the same encoder (mean pooling, L2
normalisation); the score of a label is ``cosine(text, description) * scale`` and the prediction
is the argmax over the *target's* labels. Fine-tuning on a source trains the encoder so that
texts move towards their source label's description; the target then only needs its own label
descriptions. The untuned encoder with description matching is the zero-shot baseline.
``scale`` is :data:`hubselect.data.encoder.COSINE_SCALE` in training; at prediction both
formulations divide their logits by the temperature fitted on the source's held-out slice, so
the softmax of :meth:`scores` is a calibrated probability (see :mod:`hubselect.models.folder`;
:func:`predict_labels`).

**Label-aligned head** applies when source and target share their label names after
normalisation (lowercase, strip, ``_``/``-`` become spaces) or through an explicit mapping
``{target_label: source_label}``. A classification head over the source labels is fine-tuned;
at export its rows are reordered (and, for a target using a subset of the source labels,
selected) to the target's label order, so the saved model is a stock text-classification model
whose ``id2label`` are the target's label names.

Default template. Untuned accuracy of the bundled all-MiniLM-L6-v2 (max_length 128, argmax of
the cosine) on full test splits, measured on this project's data::

    template                       FDU-MTL (7 domains*)  ag_news  trec   emotion
    "{label}"                      0.609                 0.631    0.486  0.437
    "This text is {label}."        0.625                 0.667    0.416  0.419
    "This is {label}."             0.597                 0.668    0.394  0.427
    "A {label} text."              0.612                 0.659    0.340  0.427
    "This text is about {label}."  0.645                 0.689    0.342  0.396

    * mean over books .638, electronics .620, kitchen_housewares .620, MR .648, apparel .695,
      dvd .690, toys_games .605 (400 test texts each) for the chosen template.

"This text is about {label}." is best on the FDU-MTL mean (best on 4 of the 7 domains) and on
topics (ag_news), the two target kinds this tool is built for, and best on the mean over all ten
sets (0.594 vs 0.588 for "This text is {label}."). Question-type (trec) and emotion targets do
better with the bare label name: override the template per task for those.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

import numpy as np

from hubselect.core.errors import HubselectError
from hubselect.data.encoder import CONFIG_FILE
from hubselect.data.labelnames import humanize_labels, label_lookup, label_maps, normalize_label
from hubselect.models.folder import (
    DESCRIPTION,
    HEAD,
    description_scale,
    folder_formulation,
    read_metadata,
    temperature_of,
    write_metadata,
)

logger = logging.getLogger(__name__)

AUTO = "auto"
REQUESTABLE = (AUTO, DESCRIPTION, HEAD)

#: Default label-description template; ``{label}`` is the normalised label name (measured
#: against four alternatives, see the module docstring).
DEFAULT_TEMPLATE = "This text is about {label}."

# --------------------------------------------------------------------------------------------
# Label names and descriptions
# --------------------------------------------------------------------------------------------

def require_label_names(label_names: Sequence[str] | None, *, role: str = "target") -> list[str]:
    """Check that a task has usable label names and return them as a list of strings.

    Args:
        label_names: The task's label names, in label-id order.
        role: ``target`` or ``source``; used in the error message.

    Raises:
        HubselectError: no names, blank names, or names that collide after normalisation.
    """
    names = [str(n) for n in (label_names or [])]
    if not names:
        raise HubselectError(
            f"the {role} has no label names, so it cannot be classified zero-shot: "
            "give them with --label-names a,b,c (in label-id order)")
    if any(not normalize_label(n) for n in names):
        raise HubselectError(f"the {role} label names {names} contain a blank name: "
                             "give non-empty names with --label-names a,b,c")
    seen: dict[str, str] = {}
    for name in names:
        key = normalize_label(name)
        if key in seen:
            raise HubselectError(
                f"the {role} label names '{seen[key]}' and '{name}' are the same after "
                "normalisation (lowercase, '_'/'-' as spaces): give distinct names")
        seen[key] = name
    if len(names) < 2:
        raise HubselectError(f"the {role} has a single label {names}: classification needs at "
                             "least two label names (--label-names a,b)")
    return names


def label_descriptions(
    label_names: Sequence[str],
    descriptions: str | Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Return ``{label: description}`` for every label, in label order.

    Args:
        label_names: The task's label names.
        descriptions: ``None`` for :data:`DEFAULT_TEMPLATE`; a template string containing
            ``{label}`` (filled with the readable name of :func:`humanize_labels`, e.g.
            ``sci_tech`` -> ``science technology``); or
            an explicit ``{label: description}`` dict. A dict may leave labels out; those get the
            default template. Dict keys are matched to label names after normalisation.

    Raises:
        HubselectError: a template without ``{label}``, or dict keys that are not label names.
    """
    names = require_label_names(label_names, role="task")
    if descriptions is None or isinstance(descriptions, str):
        template = DEFAULT_TEMPLATE if descriptions is None else descriptions
        if "{label}" not in template:
            raise HubselectError(f"label template '{template}' has no '{{label}}' placeholder: "
                                 "use e.g. 'This text is {label}.'")
        try:
            words = humanize_labels(names)
            return {n: template.format(label=words[n]) for n in names}
        except (IndexError, KeyError, ValueError) as exc:
            raise HubselectError(f"label template '{template}' cannot be filled ({exc}): use "
                                 "only the {label} placeholder and double other braces") from exc
    by_key = {normalize_label(n): n for n in names}
    words = humanize_labels(names)
    out = {n: DEFAULT_TEMPLATE.format(label=words[n]) for n in names}
    unknown = []
    for key, text in dict(descriptions).items():
        name = by_key.get(normalize_label(key))
        if name is None:
            unknown.append(str(key))
            continue
        if not str(text).strip():
            raise HubselectError(f"the description of label '{key}' is empty: give a short "
                                 "sentence such as 'This text is about sports.'")
        out[name] = str(text)
    if unknown:
        raise HubselectError(f"label descriptions for {unknown} do not match the label names "
                             f"{names}: key the descriptions by label name")
    return out


# --------------------------------------------------------------------------------------------
# Formulation choice and label alignment
# --------------------------------------------------------------------------------------------

def align_labels(
    source_labels: Sequence[str],
    target_labels: Sequence[str],
    mapping: Mapping[str, str] | None = None,
) -> list[int] | None:
    """Return, for each target label in order, the index of its source label; ``None`` if any
    target label has no distinct source counterpart.

    Target labels are matched through ``mapping`` (``{target_label: source_label}``) first, then
    by normalised name.

    Raises:
        HubselectError: a mapping key that is not a target label or a value that is not a source
            label.
    """
    src_index = label_lookup(source_labels)
    tgt_keys = [normalize_label(t) for t in target_labels]
    explicit: dict[str, int] = {}
    for key, value in dict(mapping or {}).items():
        if normalize_label(key) not in tgt_keys:
            raise HubselectError(
                f"label mapping key '{key}' is not a target label {list(target_labels)}: the "
                "mapping goes {target_label: source_label}")
        if normalize_label(value) not in src_index:
            raise HubselectError(
                f"label mapping value '{value}' is not a source label {list(source_labels)}: "
                "the mapping goes {target_label: source_label}")
        explicit[normalize_label(key)] = src_index[normalize_label(value)]
    order: list[int] = []
    for key in tgt_keys:
        idx = explicit.get(key, src_index.get(key))
        if idx is None or idx in order:
            return None
        order.append(idx)
    return order


def choose_formulation(
    source_labels: Sequence[str] | None,
    target_labels: Sequence[str] | None,
    requested: str = AUTO,
    mapping: Mapping[str, str] | None = None,
) -> str:
    """Pick ``description`` or ``head`` for fine-tuning on a source and predicting a target.

    ``auto`` picks ``head`` when the label sets correspond one to one (same names after
    normalisation, or through ``mapping``), else ``description``; bare integer names (``0``,
    ``1``) never correspond without a ``mapping``. ``head`` may also be requested
    when every target label maps to a distinct source label (the target uses a subset).

    Args:
        source_labels: The source's label names.
        target_labels: The target's label names (required: zero-shot needs them).
        requested: ``auto``, ``description`` or ``head``.
        mapping: Optional ``{target_label: source_label}``.

    Raises:
        HubselectError: unknown ``requested``; no target/source label names; ``head`` requested
            with incompatible label sets.
    """
    req = str(requested).strip().lower()
    if req not in REQUESTABLE:
        raise HubselectError(f"formulation '{requested}' is unknown: use one of "
                             f"{', '.join(REQUESTABLE)}")
    target = require_label_names(target_labels, role="target")
    source = require_label_names(source_labels, role="source")
    if req == DESCRIPTION:
        return DESCRIPTION
    from hubselect.data.columns import bare_integer_names

    # Bare integer names ("0"/"1") say nothing about what a label means: never align by them.
    unnamed = not mapping and (bare_integer_names(source) or bare_integer_names(target))
    order = None if unnamed else align_labels(source, target, mapping)
    if req == HEAD:
        if order is None:
            raise HubselectError(
                f"formulation=head needs every target label {target} to match a distinct source "
                f"label {source}: pass a mapping {{target_label: source_label}} or use "
                "formulation=description")
        return HEAD
    return HEAD if order is not None and len(source) == len(target) else DESCRIPTION


# --------------------------------------------------------------------------------------------
# Head export (the folder format itself lives in hubselect.models.folder)
# --------------------------------------------------------------------------------------------

def _output_layer(model: Any) -> tuple[Any, str, Any]:
    """Return ``(parent module, attribute, linear)`` of the head's final projection."""
    import torch

    found = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module.out_features == model.config.num_labels:
            found = (name, module)
    if found is None:
        raise HubselectError(f"the classification head of {type(model).__name__} was not "
                             "found: use formulation=description for this model")
    name, linear = found
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    return parent, attr, linear


def reorder_head(model: Any, order: Sequence[int], label_names: Sequence[str]) -> Any:
    """Keep and reorder the head's output rows so row ``i`` is ``label_names[i]`` (in place).

    Args:
        model: An ``AutoModelForSequenceClassification`` over the source labels.
        order: Source row index for each new label (from :func:`align_labels`).
        label_names: The new (target) label names.
    """
    import torch

    parent, attr, linear = _output_layer(model)
    index = torch.as_tensor(list(order), dtype=torch.long, device=linear.weight.device)
    new = torch.nn.Linear(linear.in_features, len(order), bias=linear.bias is not None,
                          device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(linear.weight.index_select(0, index))
        if linear.bias is not None:
            new.bias.copy_(linear.bias.index_select(0, index))
    setattr(parent, attr, new)
    model.config.num_labels = len(order)
    model.config.id2label, model.config.label2id = label_maps(label_names)
    model.num_labels = len(order)
    return model


def export_head(
    model_path: str | os.PathLike,
    target_labels: Sequence[str],
    out_dir: str | os.PathLike,
    mapping: Mapping[str, str] | None = None,
) -> str:
    """Write a stock text-classification model whose ``id2label`` are the target's labels.

    The head rows of the tuned model at ``model_path`` (over the source labels) are reordered to
    the target's label order and divided by the folder's calibration temperature (so a stock
    pipeline's softmax scores are the calibrated probabilities; the argmax is unchanged);
    weights are saved as safetensors with the tokenizer and an updated ``hubselect.json``
    (``label_names`` become the target's, ``source_label_names`` kept, ``temperature`` 1 and
    the folded one kept as ``folded_temperature``).

    Returns:
        ``out_dir`` as a string.

    Raises:
        HubselectError: the folder is not a head model or the labels do not align.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    src = os.fspath(model_path)
    if folder_formulation(src) != HEAD:
        raise HubselectError(f"model folder {src} is not a classification-head model: "
                             "log it with the description formulation instead")
    target = require_label_names(target_labels, role="target")
    model = AutoModelForSequenceClassification.from_pretrained(src, use_safetensors=True)
    source = [model.config.id2label[i] for i in range(model.config.num_labels)]
    order = align_labels(source, target, mapping)
    if order is None:
        raise HubselectError(
            f"the head's labels {source} do not cover the target labels {target}: pass a "
            "mapping {target_label: source_label} or use formulation=description")
    reorder_head(model, order, target)
    meta = read_metadata(src)
    temperature = temperature_of(meta)
    _divide_head(model, temperature)
    out = os.fspath(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    meta.update({"formulation": HEAD, "label_names": target,
                 "source_label_names": meta.get("source_label_names", source),
                 "label_order": order, "temperature": 1.0,
                 "folded_temperature": temperature})
    write_metadata(out, meta)
    return out


def _divide_head(model: Any, temperature: float) -> None:
    """Divide the head's output projection by ``temperature`` (logits / T), in place."""
    import torch

    if temperature == 1.0:
        return
    _, _, linear = _output_layer(model)
    with torch.no_grad():
        linear.weight.div_(temperature)
        if linear.bias is not None:
            linear.bias.div_(temperature)


# --------------------------------------------------------------------------------------------
# Classifiers (used by evaluation and by the logged MLflow models)
# --------------------------------------------------------------------------------------------

class DescriptionClassifier:
    """Bi-encoder zero-shot classifier: text embedding vs label-description embeddings.

    Args:
        model_path: Folder with ``config.json``, tokenizer files and safetensors weights (a base
            encoder or one tuned with the description formulation).
        label_names: The labels to predict among, in order.
        descriptions: Template string or ``{label: description}`` (see
            :func:`label_descriptions`).
        device: ``cuda``/``cpu``/``None`` (auto).
        max_length: Token limit per text.
        scale: Multiplier of the cosine similarities in :meth:`scores`; ``None`` (default) =
            the folder's calibrated one (training scale / fitted temperature), or
            :data:`hubselect.data.encoder.COSINE_SCALE` for an untuned encoder (see
            :func:`hubselect.models.folder.description_scale`).
    """

    formulation = DESCRIPTION

    def __init__(self, model_path: str | os.PathLike, label_names: Sequence[str],
                 descriptions: str | Mapping[str, str] | None = None, *,
                 device: str | None = None, max_length: int = 128,
                 scale: float | None = None):
        from hubselect.data.encoder import ResolvedModel, load_encoder

        path = os.fspath(model_path)
        self.label_names = require_label_names(label_names, role="target")
        self.descriptions = label_descriptions(self.label_names, descriptions)
        self.max_length = int(max_length)
        self.scale = float(description_scale(read_metadata(path)) if scale is None else scale)
        self.tokenizer, self.encoder = load_encoder(ResolvedModel(path, path, "local"), device)
        self._label_emb: np.ndarray | None = None
        self._by_descriptions: dict[tuple[str, ...], np.ndarray] = {}  # shared with relabel() copies

    def relabel(self, label_names: Sequence[str],
                descriptions: str | Mapping[str, str] | None = None) -> "DescriptionClassifier":
        """The same loaded encoder predicting among other labels (no reload): one tuned model
        evaluated on many targets encodes each target's texts once and loads its weights once."""
        other = object.__new__(DescriptionClassifier)
        other.__dict__.update(self.__dict__)
        other.label_names = require_label_names(label_names, role="target")
        other.descriptions = label_descriptions(other.label_names, descriptions)
        other._label_emb = None
        return other

    def label_embeddings(self) -> np.ndarray:
        """Return the L2-normalised description embeddings, shape (labels, dim)."""
        from hubselect.data.encoder import encode

        if self._label_emb is None:
            texts = tuple(self.descriptions[n] for n in self.label_names)
            if texts not in self._by_descriptions:  # targets sharing a label set share the pass
                self._by_descriptions[texts] = encode(list(texts), self.tokenizer, self.encoder,
                                                      max_length=self.max_length)
            self._label_emb = self._by_descriptions[texts]
        return self._label_emb

    def scores(self, texts: Sequence[str], *, batch_size: int = 64,
               progress: Any = None) -> np.ndarray:
        """Return ``cosine * scale`` per text and label, shape (len(texts), labels); their
        softmax is the calibrated probability of each label."""
        from hubselect.data.encoder import encode

        labels = self.label_embeddings()
        if not len(texts):
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        emb = encode(list(texts), self.tokenizer, self.encoder, batch_size=batch_size,
                     max_length=self.max_length, progress=progress)
        return (emb @ labels.T) * self.scale

    def predict(self, texts: Sequence[str], *, batch_size: int = 64) -> list[str]:
        """Return the predicted label name of each text."""
        return predict_labels(self, texts, batch_size=batch_size)[0]


def predict_labels(classifier: Any, texts: Sequence[str], *,
                   batch_size: int = 64) -> tuple[list[str], np.ndarray]:
    """The predicted label name of each text and its probability (softmax of the calibrated
    scores) for a :class:`DescriptionClassifier` or :class:`HeadClassifier`."""
    from scipy.special import softmax

    scores = np.asarray(classifier.scores(texts, batch_size=batch_size), dtype=np.float64)
    if not len(scores):
        return [], np.zeros(0)
    probs = softmax(scores, axis=1)
    best = scores.argmax(axis=1)  # the scores' argmax, exactly as before calibration
    return [classifier.label_names[i] for i in best], probs[np.arange(len(best)), best]


class HeadClassifier:
    """Classification-head model restricted and ordered to the target's labels.

    Works with a tuned head over the source labels (the columns are aligned on the fly) and
    with an exported model whose ``id2label`` already are the target's labels.

    Args:
        model_path: Folder of an ``AutoModelForSequenceClassification`` (safetensors).
        label_names: The target's labels, in order.
        mapping: Optional ``{target_label: source_label}``.
        device: ``cuda``/``cpu``/``None`` (auto).
        max_length: Token limit per text.
    """

    formulation = HEAD

    def __init__(self, model_path: str | os.PathLike, label_names: Sequence[str],
                 mapping: Mapping[str, str] | None = None, *, device: str | None = None,
                 max_length: int = 128):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from hubselect.data.encoder import pick_device

        path = os.fspath(model_path)
        self.label_names = require_label_names(label_names, role="target")
        self.max_length = int(max_length)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            path, use_safetensors=True).to(pick_device(device)).eval()
        config = self.model.config
        head_labels = [config.id2label[i] for i in range(config.num_labels)]
        order = align_labels(head_labels, self.label_names, mapping)
        if order is None:
            raise HubselectError(
                f"the head's labels {head_labels} do not cover the target labels "
                f"{self.label_names}: pass a mapping {{target_label: source_label}} or use "
                "formulation=description")
        self.order = order
        self.temperature = temperature_of(read_metadata(path))

    def scores(self, texts: Sequence[str], *, batch_size: int = 64,
               progress: Any = None) -> np.ndarray:
        """Return the head's logits for the target labels divided by the folder's calibration
        temperature, shape (len(texts), labels)."""
        import torch

        device = next(self.model.parameters()).device
        out = np.zeros((len(texts), len(self.order)), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        index = torch.as_tensor(self.order, dtype=torch.long, device=device)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                idx = order[start:start + batch_size]
                batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                       max_length=self.max_length,
                                       return_tensors="pt").to(device)
                if device.type == "cuda":
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        logits = self.model(**batch).logits
                else:
                    logits = self.model(**batch).logits
                out[idx] = (logits.float().index_select(1, index) / self.temperature).cpu().numpy()
                if progress is not None:
                    progress(len(idx))
        return out

    def predict(self, texts: Sequence[str], *, batch_size: int = 64) -> list[str]:
        """Return the predicted label name of each text."""
        return predict_labels(self, texts, batch_size=batch_size)[0]


def load_classifier(
    model_path: str | os.PathLike,
    label_names: Sequence[str],
    *,
    descriptions: str | Mapping[str, str] | None = None,
    mapping: Mapping[str, str] | None = None,
    device: str | None = None,
    max_length: int = 128,
) -> DescriptionClassifier | HeadClassifier:
    """Return the right classifier for a model folder (tuned, exported or a base encoder).

    For description models without explicit ``descriptions`` the target labels get the default
    template; both classifiers apply the folder's calibration (see
    :mod:`hubselect.models.folder`).
    """
    path = os.fspath(model_path)
    if not os.path.exists(os.path.join(path, CONFIG_FILE)):
        raise HubselectError(f"model folder {path} has no config.json: pass a folder written "
                             "by hubselect fine-tuning or a resolved model")
    if folder_formulation(path) == HEAD:
        return HeadClassifier(path, label_names, mapping, device=device, max_length=max_length)
    return DescriptionClassifier(path, label_names, descriptions, device=device,
                                 max_length=max_length)
