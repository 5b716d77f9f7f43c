"""F1: the harmonic mean of precision and recall (scikit-learn's ``f1_score``).

Shipped with hubselect so that ``evaluate.load`` finds it by local path, without the Hub.
hubselect asks for ``average="macro"`` over all the target's labels with ``zero_division=0``:
a label never predicted and never present counts with F1 0.
"""

import datasets
import evaluate
from sklearn.metrics import f1_score

_DESCRIPTION = """
The F1 score is the harmonic mean of precision and recall:
F1 = 2 * (precision * recall) / (precision + recall).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): Predicted label ids.
    references (`list` of `int`): Gold label ids.
    labels (`list` of `int`): The labels to include (all target labels for a macro average).
    pos_label (`int`): The positive class when ``average="binary"``. Default 1.
    average (`str`): ``binary`` (default), ``micro``, ``macro``, ``weighted``, ``samples``, or
        None for one score per label.
    sample_weight (`list` of `float`): Sample weights. Default None.
    zero_division (`"warn"`, 0 or 1): The value of an undefined F1. Default ``"warn"`` (0).

Returns:
    f1 (`float` or `list` of `float`): F1 score, or one per label when ``average=None``.
"""

_CITATION = """
@book{van-rijsbergen-1979,
  title={Information Retrieval}, edition={2nd}, chapter={7},
  author={van Rijsbergen, C. J.}, publisher={Butterworths}, address={London}, year={1979}
}
"""

_LABEL_IDS = datasets.Features({"predictions": datasets.Value("int32"),
                                "references": datasets.Value("int32")})


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    """F1 over integer label ids (scikit-learn's ``f1_score``)."""

    def _info(self):
        urls = ["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"]
        return evaluate.MetricInfo(description=_DESCRIPTION, citation=_CITATION,
                                   inputs_description=_KWARGS_DESCRIPTION, features=_LABEL_IDS,
                                   reference_urls=urls)

    def _compute(self, predictions, references, labels=None, pos_label=1, average="binary",
                 sample_weight=None, zero_division="warn"):
        score = f1_score(references, predictions, labels=labels, pos_label=pos_label,
                         average=average, sample_weight=sample_weight, zero_division=zero_division)
        return {"f1": float(score) if getattr(score, "size", 1) == 1 else score.tolist()}
