"""Rich progress bars for long steps; ``quiet`` turns them off. Every bar of the package is made
here (fetch, represent, fine-tuning, evaluation), so they look alike and all go to stderr."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator


def _quiet_advance(n: int = 1, total: int | None = None) -> None:
    """The ``advance`` of a quiet bar: does nothing."""


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, *, quiet: bool) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1, total=None)``; shows a rich bar on stderr unless ``quiet``.

    ``advance(n)`` moves the bar ``n`` steps; ``total`` may be given (or corrected) by any
    ``advance`` call when unknown up front. The bar shows the elapsed and, once the total is
    known, the estimated remaining time.

    Args:
        description: What the bar counts (e.g. ``fine-tuning on books (head)``).
        total: Number of steps, or ``None`` when the first ``advance`` will say.
        quiet: No bar at all (``--quiet``); ``advance`` does nothing.
    """
    if quiet:
        yield _quiet_advance
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                  transient=False) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1, total: int | None = None) -> None:
            if total is not None:
                bar.update(task, total=total)
            bar.advance(task, n)

        yield advance
