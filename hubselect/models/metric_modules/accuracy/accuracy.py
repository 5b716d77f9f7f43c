"""Accuracy: the share of predictions equal to their reference (scikit-learn's ``accuracy_score``).

Shipped with hubselect so that ``evaluate.load`` finds it by local path, without the Hub.
"""

import datasets
import evaluate
from sklearn.metrics import accuracy_score

_DESCRIPTION = """
Accuracy is the proportion of correct predictions among all predictions:
Accuracy = (TP + TN) / (TP + TN + FP + FN).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): Predicted label ids.
    references (`list` of `int`): Gold label ids.
    normalize (`bool`): If False, return the number of correct predictions instead. Default True.
    sample_weight (`list` of `float`): Sample weights. Default None.

Returns:
    accuracy (`float` or `int`): Accuracy score, in [0, 1] (or a count if ``normalize=False``).
"""

_CITATION = """
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and Varoquaux, G. and Gramfort, A. and others},
  journal={Journal of Machine Learning Research}, volume={12}, pages={2825--2830}, year={2011}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    """Accuracy over integer label ids."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int32"),
                                        "references": datasets.Value("int32")}),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/"
                            "sklearn.metrics.accuracy_score.html"],
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        score = accuracy_score(references, predictions, normalize=normalize,
                               sample_weight=sample_weight)
        return {"accuracy": float(score) if normalize else int(score)}
