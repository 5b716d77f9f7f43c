"""The transfer benchmark: the brute-force source x target matrix, ranking metrics of every
selection policy against it, a learned policy, and the report (``hubselect benchmark``).

Modules: :mod:`~hubselect.benchmark.matrix` (build/resume the matrix),
:mod:`~hubselect.benchmark.metrics` (pure metric functions), :mod:`~hubselect.benchmark.learned`
(the learned policy), :mod:`~hubselect.benchmark.report` (artifacts) and
:mod:`~hubselect.benchmark.run` (the MLflow run), :mod:`~hubselect.benchmark.presets` (its defaults and presets).
"""
