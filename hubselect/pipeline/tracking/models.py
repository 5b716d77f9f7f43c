"""Logging the tuned (or baseline) model to MLflow and registering the champion.

Both formulations are logged the same way: as an ``mlflow.pyfunc`` model *from code*. The code is
:mod:`hubselect.pipeline.tracking.served_model` (nothing is pickled), the ``hubselect`` package is logged with
it (``code_paths``), so loading needs only the pinned requirements, and its ``model_config`` holds
the target's label names, ``max_length`` and the batch size. The artifact, safetensors weights with
their tokenizer and ``hubselect.json``, is by formulation:

* **head**: the tuned head exported with its rows in the target's label order and its calibration
  temperature folded into the output layer (see :func:`hubselect.models.zeroshot.export_head`), a stock
  text-classification model whose ``id2label`` are the target's labels;
* **description**: the bi-encoder's folder as saved (its calibrated cosine scale read from its
  ``hubselect.json``, see :func:`hubselect.models.folder.description_scale`); the target's label
  descriptions are in the ``model_config``.

Both read and answer alike: pyfunc ``predict`` takes a list of texts or a DataFrame whose text
column it reads by name (``text``, the name the model was logged with, or the ``text_column``
param), refuses (HTTP 400 when served) what it cannot read, and returns a pandas DataFrame with
one row per text, ``label`` (the predicted target label name) and ``score`` (its calibrated
probability, see :mod:`hubselect.models.folder`); ``mlflow models serve`` answers
``{"predictions": [{"label": ..., "score": ...}, ...]}``. See
:mod:`hubselect.pipeline.tracking.served_model`.

Registration (:func:`register_champion`) adds a model version and moves the ``champion`` alias
to it; a registered name is never overwritten. The version shows under "Registered models" on the
page of the run that logged it and of every run that run is nested in (the ``main`` run), see
:func:`link_version`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import logging
import os
import re
import tempfile
from typing import Any, Iterator, Mapping, Sequence

from hubselect.core.cache import tempfiles_in_scratch
from hubselect.core.errors import HubselectError
from hubselect.pipeline.tracking.runs import enclosing_run_ids

logger = logging.getLogger(__name__)

TARGET_TAG = "hubselect.target"
DEFAULT_ALIAS = "champion"
DEFAULT_POLICY = "best target accuracy; the untuned baseline when no tuned model beats it"
#: Packages the logged models need at load time, pinned to the versions installed here.
REQUIREMENTS = ("mlflow", "torch", "transformers", "tokenizers", "safetensors", "numpy",
                "pandas")
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
#: A logged model's settings sit under this key of its ``model_config``: MLflow logs a
#: model config as run params, and flat keys (``label_names``, ``max_length``) would collide
#: with the step's own params of those names.
CONFIG_KEY = "hubselect"
#: The logged models' code, run by MLflow's models from code (nothing is pickled).
SERVED_MODEL_CODE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "served_model.py")
#: The text column a served model reads by default, and the param of its signature that
#: names another one (read by :mod:`hubselect.pipeline.tracking.served_model`).
TEXT_COLUMN = "text"
TEXT_PARAM = "text_column"
#: Texts per forward pass when a logged model predicts (both formulations).
BATCH_SIZE = 64


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
    text_column: str = TEXT_COLUMN,
) -> Any:
    """Log a tuned model (or the untuned baseline) for the target on the active MLflow run.

    Args:
        model: A :class:`hubselect.models.training.TunedModel`, its folder, or a
            :class:`hubselect.data.encoder.ResolvedModel` (the untuned baseline, description).
        target_label_names: The target's label names; predictions are among these.
        name: Name of the logged model (``runs:/<run_id>/<name>`` also resolves to it).
        descriptions: Target label descriptions (template or dict) for description models.
        mapping: ``{target_label: source_label}`` for head models whose labels differ.
        max_length: Token limit per text at prediction time.
        input_example: A few example texts (default: one generic sentence).
        metadata: Extra entries for the MLmodel metadata (source, metrics...).
        text_column: The name of the target's text column; the logged model reads the column of
            this name (or ``text``) from a DataFrame and records it in its signature (the default
            of its ``text_column`` param).

    Returns:
        MLflow's ``ModelInfo`` (``model_uri``, ``run_id``, ...).

    Raises:
        HubselectError: a folder that is not a model, or labels that do not fit.
    """
    from hubselect.data.encoder import CONFIG_FILE
    from hubselect.models.folder import HEAD, description_scale, folder_formulation, read_metadata, temperature_of
    from hubselect.models.zeroshot import label_descriptions, require_label_names

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
                 # the calibration, read from the folder again when the model loads (a record here)
                 **({"hubselect.temperature": temperature_of(meta)} if formulation == HEAD
                    else {"hubselect.scale": description_scale(meta)}),
                 **dict(metadata or {})}
    config = {"label_names": names, "max_length": int(max_length), "batch_size": BATCH_SIZE}
    column = str(text_column or TEXT_COLUMN)
    with tempfiles_in_scratch():  # MLflow's copies of the model: swept if this process is killed
        if formulation == HEAD:
            return _log_head(path, config, mapping, column, name, example, info_meta)
        config["descriptions"] = info_meta["hubselect.descriptions"] = label_descriptions(names, descriptions)
        return _log_served(path, config, column, name, example, info_meta)


def _served_signature(text_column: str) -> Any:
    """The logged model's signature: a ``label``/``score`` frame out, and the name of the text
    column as the default of the ``text_column`` param. There is no input schema: MLflow would cast
    a number or a null to a string before the model could refuse it, and a schema naming a column
    would refuse a plain list of texts; the model checks its input itself (see
    :mod:`hubselect.pipeline.tracking.served_model`)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(outputs=Schema([ColSpec("string", "label"), ColSpec("double", "score")]),
                          params=ParamSchema([ParamSpec(TEXT_PARAM, "string", text_column)]))


def _log_head(path: str, config: dict[str, Any], mapping: Mapping[str, str] | None, text_column: str,
              name: str, example: list[str], info_meta: dict[str, Any]) -> Any:
    """Log the head exported for the target (rows in its label order, temperature folded in)."""
    from hubselect.models.zeroshot import export_head

    with tempfile.TemporaryDirectory(prefix="hubselect-export-") as tmp:
        exported = export_head(path, config["label_names"], os.path.join(tmp, "model"), mapping)
        return _log_served(exported, config, text_column, name, example, info_meta)


def _log_served(path: str, config: dict[str, Any], text_column: str, name: str, example: list[str],
                info_meta: dict[str, Any]) -> Any:
    """Log the model folder ``path`` from code (:data:`SERVED_MODEL_CODE`), with ``config`` as its
    ``model_config``."""
    import mlflow

    import hubselect

    return mlflow.pyfunc.log_model(
        name=name, python_model=SERVED_MODEL_CODE,
        artifacts={"model": path}, model_config={CONFIG_KEY: config},
        code_paths=[os.path.dirname(os.path.abspath(hubselect.__file__))],
        signature=_served_signature(text_column), input_example=example,
        pip_requirements=pip_requirements(), metadata=info_meta)


@contextlib.contextmanager
def _mlflow_prints_off() -> Iterator[None]:
    """Silence MLflow's console prints for the block (``register_model`` prints "Registered model
    ... already exists" even for the model created just before; hubselect logs its own line).

    MLflow prints them, and its log lines, to whatever ``sys.stderr`` is when it writes, so the
    block's stderr goes to a buffer that is dropped.
    """
    with contextlib.redirect_stderr(io.StringIO()):
        yield


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
    Called inside a nested run (the ``register`` step under ``main``), the version is also shown
    on the runs it is nested in (:func:`link_version`).

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
    for run_id in enclosing_run_ids():
        _link_or_warn(reg_name, version, run_id)
    logger.info("registered models:/%s/%s (alias @%s)", reg_name, version, alias)
    return version


def link_version(name: str, version: int | str, run_id: str) -> bool:
    """Show the registered version ``name``/``version`` on the page of run ``run_id`` too.

    A model version belongs to one run, the one that logged its model, and MLflow's run page lists
    under "Registered models" the versions of that run *and* those registered from the logged
    models among the run's inputs and outputs. So the version's logged model is logged as an
    output of ``run_id`` (``MlflowClient.log_outputs``; nothing is copied), once.

    Returns:
        Whether the run shows the version: ``False`` for a version registered from a path, which
        has no logged model.
    """
    from mlflow.entities import LoggedModelOutput
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    model_id = _logged_model_id(client.get_model_version(name, str(version)))
    if model_id is None:
        return False
    outputs = client.get_run(run_id).outputs
    if model_id not in {m.model_id for m in (outputs.model_outputs if outputs else [])}:
        client.log_outputs(run_id, [LoggedModelOutput(model_id, step=0)])
    return True


def _link_or_warn(name: str, version: int, run_id: str) -> None:
    """:func:`link_version`; a store that refuses it costs a warning, not the registration."""
    from mlflow.exceptions import MlflowException

    try:
        link_version(name, version, run_id)
    except MlflowException as exc:
        logger.warning("models:/%s/%s is registered but not shown on run %s (%s)", name, version, run_id,
                       (exc.message or str(exc)).splitlines()[0][:160])


def _logged_model_id(version: Any) -> str | None:
    """The id of the logged model a model version was registered from: its ``model_id`` where the
    registry keeps it, else the ``<id>`` of its ``models:/<id>`` source (the SQLite registry keeps
    only that); ``None`` for a version registered from a path."""
    if getattr(version, "model_id", None):
        return version.model_id
    source = str(version.source or "")
    model_id = source[len("models:/"):] if source.startswith("models:/") else ""
    return model_id if model_id and not set("/@") & set(model_id) else None


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
