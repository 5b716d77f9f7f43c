"""Rich progress bars for long steps; ``quiet`` turns them off."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, *, quiet: bool) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1, total=None)``; shows a rich bar on stderr unless ``quiet``.

    ``total`` may be given (or corrected) by the first ``advance`` call when unknown up front.
    """
    if quiet:
        yield lambda n=1, total=None: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1, new_total: int | None = None) -> None:
            if new_total is not None:
                bar.update(task, total=new_total)
            bar.advance(task, n)

        yield advance
