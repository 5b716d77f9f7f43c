"""Which tuned model to register, and why: by target accuracy, by selection rank, or label-free.

The label-free estimators live in :mod:`hubselect.models.labelfree`; none of them reads the target's
labels.
"""

from __future__ import annotations

from typing import Any

from hubselect.core.errors import HubselectError
from hubselect.data.entries import Catalog

#: Label-free champion estimators (:mod:`hubselect.models.labelfree`), usable without target labels.
LABEL_FREE = ("confidence", "atc", "agreement", "entropy")
#: What ``champion=auto`` uses when the target has no labelled split: of ``rank`` and the
#: :data:`LABEL_FREE` estimators, the one with the lowest champion regret on the benchmark's dev
#: targets (docs/results/collection/trust.md: rank 1.73 points, atc 1.96, agreement 3.81).
LABEL_FREE_DEFAULT = "rank"
CHAMPION_POLICIES = ("auto", "metric", "rank", *LABEL_FREE)


BASELINE = "(untuned baseline)"


def choose_champion(evaluation: dict | None, tuned: list[dict], policy: str) -> tuple[dict, str]:
    """The model to register and why.

    ``metric``: the best target accuracy (macro-F1 breaks ties) among the tuned sources *and*
    the untuned baseline, so a job whose tuning hurt registers the untuned model rather than a
    worse one (its record has ``source`` :data:`BASELINE` and ``path`` ``None``).
    ``rank``: the top-ranked selected source; the target's labels play no part.
    """
    if policy == "metric":
        if evaluation is None:
            raise HubselectError("champion=metric needs a labelled evaluation split of the target: "
                                 "pass --eval-split, or use --champion rank")
        base = evaluation["baseline"]
        baseline = {"source": BASELINE, "source_revision": None, "path": None, "accuracy": base["accuracy"],
                    "macro_f1": base["macro_f1"], "gain": 0.0}
        best = max([*evaluation["pairs"], baseline], key=lambda p: (p["accuracy"], p["macro_f1"]))
        return best, (f"best target accuracy {best['accuracy']:.4f} among {len(evaluation['pairs'])} tuned sources "
                      f"and the untuned baseline ({base['accuracy']:.4f})")
    return tuned[0], "top-ranked selected source (rank 1 of the selection); target labels not used"


def champion_policy(cfg: Any, has_labels: bool) -> str:
    """The champion policy ``cfg.champion`` resolves to (``auto``: metric with labels, else label-free)."""
    if cfg.champion != "auto":
        return cfg.champion
    return "metric" if has_labels else LABEL_FREE_DEFAULT


def pick_champion(evaluation: dict | None, tuned: list[dict], cfg: Any, catalog: Catalog) -> tuple[dict, str, str]:
    """``(champion record, reason, policy)``.

    Only ``metric`` reads the target's labels to choose. Whatever chose it, the champion of a
    target that has labels carries its measured accuracy (its pair's record), so ``rank`` and the
    label-free policies report how well their choice did.
    """
    from hubselect.models.labelfree import choose_label_free

    policy = champion_policy(cfg, evaluation is not None)
    if policy in LABEL_FREE:
        champion, reason = choose_label_free(tuned, catalog, cfg, policy)
    else:
        champion, reason = choose_champion(evaluation, tuned, policy)
    if evaluation is not None and policy != "metric":  # chosen blind; report the accuracy it reached
        champion = next((p for p in evaluation["pairs"] if p["source"] == champion["source"]), champion)
    return champion, reason, policy
