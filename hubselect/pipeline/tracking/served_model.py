"""The served model of both formulations, logged with MLflow's *models from code*: nothing is unpickled.

:func:`hubselect.pipeline.tracking.models.log_model` gives MLflow this file's path as the ``python_model``
of every model it logs: a description (bi-encoder) model, whose artifact is the saved encoder, and
a head model, whose artifact is the exported head (rows in the target's label order, calibration
temperature folded in, see :func:`hubselect.models.zeroshot.export_head`). MLflow copies the file into
the logged model and runs it whenever the model is loaded (``mlflow.pyfunc.load_model``,
``mlflow models serve``); the last line hands MLflow the model object with
:func:`mlflow.models.set_model`. The class is therefore defined by this code at load time, never
unpickled. It imports :mod:`hubselect`, which is logged with the model (``code_paths``). Nothing
else imports this module: it is MLflow's model file, which is why it imports mlflow at the top.

What it reads (:func:`input_texts`): one string per row, from

* a list, array or Series of strings (``{"inputs": [...]}`` when served), or one string;
* a DataFrame (``dataframe_split``/``dataframe_records``, CSV) or a dict of columns: the column
  named by the ``text_column`` param, whose default, recorded in the model's signature, is the
  name the model was trained with (``text`` unless said otherwise), else a column named ``text``,
  else the only column of a frame built from a list (column ``0``).

What it refuses, with an ``MlflowException`` (``INVALID_PARAMETER_VALUE``, which the scoring
server answers with HTTP 400) whose message names the fix: a frame without that column (the
message names the expected column and the columns found), a row that is not a string (a number, a
null, a list: the message names the rows), and an input with no rows.

What it answers: a DataFrame with one row per text, ``label`` (the target label name) and
``score`` (its calibrated probability); the artifact is loaded with
:func:`hubselect.models.zeroshot.load_classifier` (a :class:`~hubselect.models.zeroshot.DescriptionClassifier` or
a :class:`~hubselect.models.zeroshot.HeadClassifier`, as evaluation loads it), and the texts are
classified in length-sorted batches (``batch_size`` of the model config, 64 by default), each cut at
``max_length`` tokens.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel

from hubselect.pipeline.tracking.models import CONFIG_KEY, TEXT_PARAM
from hubselect.pipeline.tracking.models import TEXT_COLUMN as TEXT

#: How many bad rows a refusal lists.
_SHOWN = 5


def _refuse(message: str) -> MlflowException:
    """The error for an input the model cannot read (HTTP 400 when served)."""
    return MlflowException.invalid_parameter_value(message)


def _columns_text(columns: Any) -> str:
    return ", ".join(repr(c) if not isinstance(c, str) else c for c in columns) or "none"


def _pick_column(columns: list[Any], column: str) -> Any:
    """The column holding the texts: ``column``, else ``text``, else a frame's only unnamed column."""
    for name in (column, TEXT):
        if name in columns:
            return name
    if columns == [0]:  # a frame built from a list of texts
        return 0
    others = f" or '{TEXT}'" if column != TEXT else ""
    raise _refuse(f"the input has no column '{column}'{others} of texts (its columns: {_columns_text(columns)}): "
                  f"name the column of texts '{column}', or pass params {{\"{TEXT_PARAM}\": \"<its name>\"}}")


def _values(model_input: Any, column: str) -> list[Any]:
    """The row values of the text column, from any input MLflow hands a pyfunc model."""
    import numpy as np
    import pandas as pd

    if isinstance(model_input, list) and model_input and all(isinstance(v, dict) for v in model_input):
        model_input = pd.DataFrame(model_input)  # records
    if isinstance(model_input, dict):  # columns ({"inputs": {"text": [...]}} when served)
        values = model_input[_pick_column(list(model_input), column)]
        if isinstance(values, (list, tuple)):
            return list(values)
        return np.asarray(values, dtype=object).reshape(-1).tolist()
    if isinstance(model_input, pd.DataFrame):
        return model_input[_pick_column(list(model_input.columns), column)].tolist()
    if isinstance(model_input, (pd.Series, list, tuple)):
        return list(model_input)
    if isinstance(model_input, np.ndarray):
        if model_input.ndim > 1 and model_input.shape[1:] != (1,) * (model_input.ndim - 1):
            raise _refuse(f"the input is a table of shape {model_input.shape}: send one text per row, "
                          f'e.g. {{"inputs": ["a text", "another"]}}')
        return model_input.reshape(-1).tolist()
    if isinstance(model_input, str):
        return [model_input]
    raise _refuse(f"the input is a {type(model_input).__name__}, not texts: send a list of strings or a "
                  f"'{column}' column")


def _what(value: Any) -> str:
    """How a refused value is named in the message: ``null``, or its repr and type."""
    import pandas as pd

    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return "null"
    shown = repr(value)
    return f"{shown[:40]}{'...' if len(shown) > 40 else ''} ({type(value).__name__})"


def input_texts(model_input: Any, column: str = TEXT) -> list[str]:
    """The texts of a pyfunc input, one per row (see the module docstring for what is read).

    Args:
        model_input: What MLflow hands ``predict``.
        column: The name of the text column (the ``text_column`` param).

    Raises:
        MlflowException: ``INVALID_PARAMETER_VALUE`` for an input it cannot read.
    """
    values = _values(model_input, column)
    if not values:
        raise _refuse(f"the input has no rows: send at least one text, e.g. {{\"inputs\": [\"a text\"]}} "
                      f"or a '{column}' column with one row")
    bad = [i for i, value in enumerate(values) if not isinstance(value, str)]
    if bad:
        rows = ", ".join(f"row {i} is {_what(values[i])}" for i in bad[:_SHOWN])
        more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
        raise _refuse(f"{len(bad)} of {len(values)} rows are not texts ({rows}{more}; rows count from 0): "
                      "send one string per row")
    return [str(v) for v in values]


@contextlib.contextmanager
def _type_hint_notice_off() -> Iterator[None]:
    """Hide MLflow's request for type hints on ``predict`` while the class is defined: they would
    restrict the server's input formats to ``{"inputs": ...}``. MLflow turns UserWarnings back on
    around its check, so a warnings filter cannot drop it; the notice is skipped where it is shown."""
    with warnings.catch_warnings():  # restores showwarning after
        show = warnings.showwarning

        def showwarning(message: Any, *args: Any, **kwargs: Any) -> None:
            if "Add type hints to the `predict` method" not in str(message):
                show(message, *args, **kwargs)

        warnings.showwarning = showwarning
        yield


with _type_hint_notice_off():
    class HubselectServedModel(PythonModel):
        """Zero-shot classifier of either formulation: the target label of each text with its calibrated
        probability. Labels, descriptions (description), max_length and batch_size come from the model
        config; the calibration (cosine scale or head temperature) from the artifact's model folder."""

        def load_context(self, context):  # noqa: ANN001, ANN202
            from hubselect.models.zeroshot import load_classifier

            config = dict(context.model_config[CONFIG_KEY])
            self.batch_size = int(config.get("batch_size", 64))
            self.classifier = load_classifier(
                context.artifacts["model"], config["label_names"], descriptions=config.get("descriptions"),
                max_length=int(config["max_length"]), device=config.get("device"))

        def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN202
            """A DataFrame with the predicted target ``label`` of each input text and its calibrated
            probability ``score``."""
            import pandas as pd

            from hubselect.models.zeroshot import predict_labels

            texts = input_texts(model_input, str((params or {}).get(TEXT_PARAM) or TEXT))
            labels, scores = predict_labels(self.classifier, texts, batch_size=self.batch_size)
            return pd.DataFrame({"label": labels, "score": scores.astype(float)})


mlflow.models.set_model(HubselectServedModel())
