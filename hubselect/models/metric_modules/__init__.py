"""Metric modules shipped with hubselect, in the layout of ``evaluate``'s local modules.

Each folder ``<name>/<name>.py`` holds one :class:`evaluate.Metric` computed with scikit-learn,
as the Hub's ``evaluate-metric/<name>`` module is. :mod:`hubselect.models.evaluation` loads them by
their local path, so no metric needs the Hub. Nothing here is imported by the package itself.
"""
