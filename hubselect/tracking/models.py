"""Logging the tuned (or baseline) model to MLflow and registering the champion.

Two ways a model is logged, by formulation:

* **head**: the tuned head is exported with its rows in the target's label order and its
  calibration temperature folded into the output layer (see
  :func:`hubselect.zeroshot.export_head`), a stock text-classification model, and logged with
  the ``mlflow.transformers`` flavour (``task="text-classification"``).
* **description**: the bi-encoder is not a stock pipeline, so it is logged as an
  ``mlflow.pyfunc`` ``PythonModel`` whose artifact is the saved safetensors model folder and
  whose ``model_config`` holds the target's label names, descriptions and calibrated cosine
  scale. The ``hubselect`` package is logged with it (``code_paths``), so loading needs only
  the pinned requirements.

Both answer the same way: pyfunc ``predict`` takes a list of texts (or a DataFrame with a
``text`` column, else its first column) and returns a pandas DataFrame with one row per text,
``label`` (the predicted target label name) and ``score`` (its calibrated probability, see
:mod:`hubselect.model_folder`); ``mlflow models serve`` answers
``{"predictions": [{"label": ..., "score": ...}, ...]}``.

Registration (:func:`register_champion`) adds a model version and moves the ``champion`` alias
to it; a registered name is never overwritten.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import re
import tempfile
from typing import Any, Iterator, Mapping, Sequence

from hubselect.cache import tempfiles_in_scratch
from hubselect.errors import HubselectError

logger = logging.getLogger(__name__)

TARGET_TAG = "hubselect.target"
DEFAULT_ALIAS = "champion"
DEFAULT_POLICY = "best target accuracy; the untuned baseline when no tuned model beats it"
#: Packages the logged models need at load time, pinned to the versions installed here.
REQUIREMENTS = ("mlflow", "torch", "transformers", "tokenizers", "safetensors", "numpy",
                "pandas")
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
#: The description model's settings sit under this key of its ``model_config``: MLflow logs a
#: model config as run params, and flat keys (``label_names``, ``max_length``) would collide
#: with the step's own params of those names.
CONFIG_KEY = "hubselect"


def default_model_name(target: str) -> str:
    """Return ``hubselect-<target>`` reduced to the characters MLflow allows everywhere.

    Runs of characters other than letters, digits, ``_``, ``.`` and ``-`` (e.g. ``/``, ``:``,
    ``@``, spaces) become one ``-``; the result is at most 100 characters.
    """
    return sanitize_model_name(f"hubselect-{target}")


def sanitize_model_name(name: str) -> str:
    """Make ``name`` a valid registered model name (see :func:`default_model_name`)."""
    clean = _NAME_BAD.sub("-", str(name)).strip("-.")[:100].strip("-.")
    if not clean:
        raise HubselectError(f"registered model name '{name}' has no usable characters: use "
                             "letters, digits, '_', '.' or '-'")
    return clean


def pip_requirements() -> list[str]:
    """Return the explicit pinned requirements of a logged model (versions installed here).

    A local version label is dropped (``torch==2.13.0``, not ``2.13.0+cpu``) so the pins
    install from PyPI on CPU and GPU machines alike.
    """
    out = []
    for package in REQUIREMENTS:
        try:
            version = importlib.metadata.version(package).split("+", 1)[0]
            out.append(f"{package}=={version}")
        except importlib.metadata.PackageNotFoundError:
            out.append(package)
    return out


def _description_pyfunc() -> Any:
    """Return the PythonModel instance for a description (bi-encoder) model.

    Labels, descriptions, scale and max_length come from the logged ``model_config``.

    The class is defined here so that importing this module does not import mlflow; cloudpickle
    stores it by value and it imports :mod:`hubselect.zeroshot` (logged as code) when loaded.
    """
    import warnings

    import mlflow.pyfunc

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Add type hints", category=UserWarning)
        return _define_description_model(mlflow.pyfunc.PythonModel)()


def _define_description_model(base: type) -> type:
    """Define the description PythonModel class on ``base`` (``mlflow.pyfunc.PythonModel``)."""

    class HubselectDescriptionModel(base):
        """Zero-shot bi-encoder: predicts the target label whose description is closest, with
        its calibrated probability."""

        # No type hints on load_context/predict: with a ``list[str]`` hint MLflow's server
        # accepts only ``{"inputs": ...}``; without, ``dataframe_split``/``records`` work too.
        def load_context(self, context):  # noqa: ANN001, ANN202
            from hubselect.zeroshot import DescriptionClassifier

            config = dict(context.model_config or {})
            config = dict(config.get(CONFIG_KEY, config))  # nested since 0.2; flat before
            self.classifier = DescriptionClassifier(
                context.artifacts["model"], config["label_names"], config["descriptions"],
                max_length=int(config.get("max_length", 128)),
                scale=float(config.get("scale", 20.0)), device=config.get("device"))

        def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN202
            """Return a DataFrame with the predicted target ``label`` of each input text and
            its calibrated probability ``score`` (the transformers flavour's columns)."""
            import pandas as pd

            from hubselect.zeroshot import predict_labels

            labels, scores = predict_labels(self.classifier, _texts_of(model_input))
            return pd.DataFrame({"label": labels, "score": scores.astype(float)})

    return HubselectDescriptionModel


def _texts_of(model_input: Any) -> list[str]:
    """Texts from what pyfunc hands over: a DataFrame (``text`` column or the first one), a
    Series, an array, a list, a dict with ``text``/``inputs``, or one string."""
    import numpy as np
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        column = "text" if "text" in model_input.columns else model_input.columns[0]
        values = model_input[column].tolist()
    elif isinstance(model_input, pd.Series):
        values = model_input.tolist()
    elif isinstance(model_input, np.ndarray):
        values = model_input.reshape(-1).tolist()
    elif isinstance(model_input, str):
        values = [model_input]
    elif isinstance(model_input, Mapping):
        values = model_input.get("text", model_input.get("inputs", []))
        values = [values] if isinstance(values, str) else list(values)
    else:
        values = list(model_input)
    return ["" if v is None else str(v) for v in values]


def log_model(
    model: Any,
    target_label_names: Sequence[str],
    *,
    name: str = "model",
    descriptions: str | Mapping[str, str] | None = None,
    mapping: Mapping[str, str] | None = None,
    max_length: int = 128,
    input_example: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """Log a tuned model (or the untuned baseline) for the target on the active MLflow run.

    Args:
        model: A :class:`hubselect.training.TunedModel`, its folder, or a
            :class:`hubselect.modeling.ResolvedModel` (the untuned baseline, description).
        target_label_names: The target's label names; predictions are among these.
        name: Name of the logged model (``runs:/<run_id>/<name>`` also resolves to it).
        descriptions: Target label descriptions (template or dict) for description models.
        mapping: ``{target_label: source_label}`` for head models whose labels differ.
        max_length: Token limit per text at prediction time.
        input_example: A few example texts (default: one generic sentence).
        metadata: Extra entries for the MLmodel metadata (source, metrics...).

    Returns:
        MLflow's ``ModelInfo`` (``model_uri``, ``run_id``, ...).

    Raises:
        HubselectError: a folder that is not a model, or labels that do not fit.
    """
    from hubselect.model_folder import HEAD, folder_formulation, read_metadata
    from hubselect.modeling import CONFIG_FILE
    from hubselect.zeroshot import label_descriptions, require_label_names

    path = os.fspath(getattr(model, "path", model))
    if not os.path.exists(os.path.join(path, CONFIG_FILE)):
        raise HubselectError(f"cannot log {path}: it is not a model folder (no config.json)")
    names = require_label_names(target_label_names, role="target")
    example = list(input_example or ["This product works great and I would buy it again."])
    formulation = folder_formulation(path)
    meta = read_metadata(path)
    info_meta = {"hubselect.formulation": formulation, "hubselect.label_names": names,
                 "hubselect.source": (meta.get("source") or {}).get("name"),
                 "hubselect.base_model": (meta.get("model") or {}).get("name"),
                 **dict(metadata or {})}
    with tempfiles_in_scratch():  # MLflow's copies of the model: swept if this process is killed
        if formulation == HEAD:
            return _log_head(path, names, mapping, name, example, info_meta)
        descs = label_descriptions(names, descriptions)
        info_meta["hubselect.descriptions"] = descs
        return _log_description(path, names, descs, max_length, name, example, info_meta)


def _label_score_signature(example: list[str], names: list[str]) -> Any:
    """The signature of both flavours: texts in, a ``label``/``score`` frame out."""
    import pandas as pd
    from mlflow.models import infer_signature

    return infer_signature(example, pd.DataFrame({"label": [names[0]] * len(example),
                                                  "score": [1.0] * len(example)}))


def _log_head(path: str, names: list[str], mapping: Mapping[str, str] | None, name: str,
              example: list[str], info_meta: dict[str, Any]) -> Any:
    import mlflow
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hubselect.zeroshot import export_head

    with tempfile.TemporaryDirectory(prefix="hubselect-export-") as tmp:
        exported = export_head(path, names, os.path.join(tmp, "model"), mapping)
        tokenizer = AutoTokenizer.from_pretrained(exported)
        head = AutoModelForSequenceClassification.from_pretrained(exported,
                                                                  use_safetensors=True)
        return mlflow.transformers.log_model(
            transformers_model={"model": head, "tokenizer": tokenizer}, name=name,
            task="text-classification", signature=_label_score_signature(example, names),
            input_example=example,
            pip_requirements=pip_requirements(), metadata=info_meta,
            model_card=_model_card(names, info_meta))


def _model_card(names: list[str], info_meta: Mapping[str, Any]) -> Any:
    """A short model card, so MLflow does not look the exported folder up on the Hub."""
    from huggingface_hub import ModelCard

    return ModelCard(
        "---\nlibrary_name: transformers\npipeline_tag: text-classification\n---\n"
        "# hubselect zero-shot text classifier\n\n"
        f"Labels (target): {', '.join(names)}. Fine-tuned on source "
        f"'{info_meta.get('hubselect.source')}' from base model "
        f"'{info_meta.get('hubselect.base_model')}' with a label-aligned classification head.\n")


def _log_description(path: str, names: list[str], descs: dict[str, str], max_length: int,
                     name: str, example: list[str], info_meta: dict[str, Any]) -> Any:
    """Log the bi-encoder as a PythonModel; ``scale`` is the folder's calibrated one."""
    import mlflow

    import hubselect
    from hubselect.model_folder import description_scale, read_metadata

    scale = description_scale(read_metadata(path))
    config = {CONFIG_KEY: {"label_names": names, "descriptions": descs, "scale": scale,
                           "max_length": int(max_length)}}
    with _known_mlflow_notices_off():
        return mlflow.pyfunc.log_model(
            name=name, python_model=_description_pyfunc(),
            artifacts={"model": path}, model_config=config,
            code_paths=[os.path.dirname(os.path.abspath(hubselect.__file__))],
            signature=_label_score_signature(example, names), input_example=example,
            pip_requirements=pip_requirements(), metadata=info_meta)


class _DropMessages(logging.Filter):
    """Drop log records whose message starts with one of ``prefixes``."""

    def __init__(self, *prefixes: str):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


@contextlib.contextmanager
def _known_mlflow_notices_off() -> Iterator[None]:
    """Silence MLflow's notices about choices made here on purpose while a description model is
    logged: the pickled ``python_model`` object (hubselect is logged as code with it) and the
    missing type hints (they would restrict the server's input formats)."""
    import warnings

    drop = _DropMessages("Passing a Python object as `python_model`")
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    pyfunc_logger.addFilter(drop)
    try:
        with warnings.catch_warnings():  # restores showwarning after
            # MLflow re-enables UserWarnings ("once") around its check, so a filter cannot drop it
            show = warnings.showwarning

            def showwarning(message: Any, *args: Any, **kwargs: Any) -> None:
                if "Add type hints to the `predict` method" not in str(message):
                    show(message, *args, **kwargs)

            warnings.showwarning = showwarning
            yield
    finally:
        pyfunc_logger.removeFilter(drop)


@contextlib.contextmanager
def _mlflow_prints_off() -> Iterator[None]:
    """Silence MLflow's console prints for the block (``register_model`` prints "Registered model
    ... already exists" even for the model created just before; hubselect logs its own line)."""
    from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM as stream

    previous = stream.enabled
    stream.enabled = False
    try:
        yield
    finally:
        stream.enabled = previous


def register_champion(
    model: Any,
    name: str | None = None,
    *,
    target: str,
    source: str | Sequence[str] | None = None,
    metrics: Mapping[str, float] | None = None,
    gain: float | None = None,
    policy: str = DEFAULT_POLICY,
    alias: str = DEFAULT_ALIAS,
    tags: Mapping[str, Any] | None = None,
    artifact_name: str = "model",
) -> int:
    """Register a logged model as a new version of ``name`` and point ``alias`` at it.

    A registered name is never overwritten: each call adds a version and moves the alias. If
    the registered model exists with a ``hubselect.target`` tag naming a different target, the
    version is added anyway and a one-line warning is logged.

    Args:
        model: MLflow ``ModelInfo``, a model URI (``runs:/...``, ``models:/...``) or a run id
            (then ``runs:/<run_id>/<artifact_name>``).
        name: Registered model name (default :func:`default_model_name` of ``target``);
            sanitised to MLflow's allowed characters.
        target: Target task name (tag ``hubselect.target`` on the model and the version).
        source: Source task name(s) the model was tuned on (``None`` for the baseline).
        metrics: Measures to tag the version with, e.g. accuracy, macro_f1,
            baseline_accuracy (tags ``hubselect.<key>``).
        gain: Tuned minus baseline accuracy (tag ``hubselect.gain``).
        policy: How the champion was chosen (tag ``hubselect.champion_policy``).
        alias: Alias moved to the new version.
        tags: Further version tags.
        artifact_name: Logged model name used with a run id.

    Returns:
        The new version number.

    Raises:
        HubselectError: the model URI cannot be registered (one line, with the cause).
    """
    reg_name = sanitize_model_name(name) if name else default_model_name(target)
    if isinstance(model, str) and _RUN_ID.match(model):
        uri = f"runs:/{model}/{artifact_name}"
    else:
        uri = str(getattr(model, "model_uri", model))
    _ensure_registered(reg_name, target)
    version = _add_version(uri, reg_name, alias,
                           _version_tags(target, source, metrics, gain, policy, tags))
    logger.info("registered models:/%s/%s (alias @%s)", reg_name, version, alias)
    return version


def _ensure_registered(reg_name: str, target: str) -> None:
    """Create the registered model tagged with ``target``, or tag / warn on an existing one."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        registered = client.get_registered_model(reg_name)
    except MlflowException:
        registered = None
    if registered is None:
        try:
            client.create_registered_model(reg_name, tags={TARGET_TAG: target},
                                           description=f"hubselect champion for {target}")
            return
        except MlflowException:  # created concurrently: fine, add a version to it
            registered = client.get_registered_model(reg_name)
    previous = (registered.tags or {}).get(TARGET_TAG)
    if previous is None:
        client.set_registered_model_tag(reg_name, TARGET_TAG, target)
    elif previous != target:
        logger.warning("registered model '%s' is tagged for target '%s', not '%s': adding "
                       "version anyway", reg_name, previous, target)


def _version_tags(target: str, source: str | Sequence[str] | None,
                  metrics: Mapping[str, float] | None, gain: float | None, policy: str,
                  tags: Mapping[str, Any] | None) -> dict[str, str]:
    """The tags of a new champion version (target, sources, policy, gain, metrics, extras)."""
    sources = [source] if isinstance(source, str) else list(source or [])
    version_tags = {TARGET_TAG: target, "hubselect.source": ",".join(sources) or "baseline",
                    "hubselect.champion_policy": policy}
    if gain is not None:
        version_tags["hubselect.gain"] = f"{float(gain):.6g}"
    for key, value in (metrics or {}).items():
        version_tags[f"hubselect.{key}"] = f"{value:.6g}" if isinstance(value, float) else value
    version_tags.update(dict(tags or {}))
    return {k: str(v) for k, v in version_tags.items()}


def _add_version(uri: str, reg_name: str, alias: str, version_tags: dict[str, str]) -> int:
    """Register ``uri`` as a new version of ``reg_name`` and point ``alias`` at it."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        with _mlflow_prints_off():
            version = mlflow.register_model(uri, reg_name, tags=version_tags)
        MlflowClient().set_registered_model_alias(reg_name, alias, version.version)
    except MlflowException as exc:
        raise HubselectError(f"cannot register {uri} as '{reg_name}' "
                             f"({exc.message.splitlines()[0] if exc.message else exc}): log "
                             "the model first and check the tracking URI") from exc
    return int(version.version)
