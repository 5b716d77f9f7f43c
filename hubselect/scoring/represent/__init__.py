"""Domain representations: term distributions and sentence embeddings, cached on disk."""
