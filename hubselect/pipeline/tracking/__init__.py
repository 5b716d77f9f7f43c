"""Everything that talks to MLflow lives in this package (no other module imports mlflow).

- :mod:`hubselect.pipeline.tracking.runs`: tracking store, step runs, reuse of finished steps, artifacts,
  dataset inputs.
- :mod:`hubselect.pipeline.tracking.models`: logging and registering the champion model.
"""
