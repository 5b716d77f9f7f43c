"""Thin scripts, one per MLflow entry point; run them as modules (``python -m entrypoints.score``)."""
