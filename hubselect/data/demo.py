"""A small, synthetic, deterministic demo catalog so ``mlflow run .`` works anywhere offline.

**The texts are synthetic**: short review-like sentences built from templates, a domain
vocabulary and sentiment phrases, with labels positive/negative (and one topic task with other
labels). They exist to exercise the pipeline end to end in minutes, not to measure anything.
Related domains share vocabulary on purpose (kitchen ~ appliances ~ electronics, books ~ movies),
so divergence has something to find.

The catalog is written once per version under ``<cache>/demo/v<VERSION>/<domain>/`` with
``train.jsonl`` (300), ``test.jsonl`` (100) and ``unlabeled.jsonl`` (300).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from hubselect.core.cache import atomic_path, cache_dir

VERSION = 1
SIZES = {"train": 300, "test": 100, "unlabeled": 300}

_SHARED = {
    "home": ["kitchen", "counter", "sink", "cupboard", "oven"],
    "device": ["battery", "charger", "cable", "button", "screen", "plug"],
    "story": ["plot", "characters", "ending", "story", "dialogue", "author"],
}
DOMAINS: dict[str, dict[str, list[str]]] = {
    "kitchen": {"nouns": ["blender", "knife set", "frying pan", "kettle", "toaster", "cutting board"],
                "topics": _SHARED["home"]},
    "appliances": {"nouns": ["dishwasher", "microwave", "toaster oven", "coffee maker", "fridge"],
                   "topics": _SHARED["home"] + _SHARED["device"][:3]},
    "electronics": {"nouns": ["headphones", "camera", "speaker", "laptop", "tablet", "router"],
                    "topics": _SHARED["device"]},
    "books": {"nouns": ["novel", "biography", "cookbook", "thriller", "paperback"],
              "topics": _SHARED["story"]},
    "movies": {"nouns": ["film", "movie", "sequel", "documentary", "dvd"],
               "topics": _SHARED["story"][:4] + ["actors", "soundtrack", "director"]},
}
_POSITIVE = ["works great", "is excellent", "I love it", "highly recommend it", "worth every penny",
             "exceeded my expectations", "is a pleasure", "is simply wonderful"]
_NEGATIVE = ["broke quickly", "is terrible", "I regret buying it", "would not recommend it",
             "a waste of money", "fell apart", "is disappointing", "is simply awful"]
_TEMPLATES = ["the {noun} {phrase} and the {topic} {phrase2}.",
              "this {noun} {phrase}; the {topic} {phrase2}.",
              "{phrase2}: the {topic} of this {noun}, honestly it {phrase}.",
              "bought the {noun} last month, the {topic} {phrase} overall."]
_TOPICS = {"world": ["election", "minister", "border", "summit", "treaty"],
           "sports": ["match", "league", "coach", "season", "goal"],
           "business": ["market", "shares", "profit", "merger", "bank"]}


def _review(rng: random.Random, domain: dict[str, list[str]], label: str) -> str:
    good, bad = (_POSITIVE, _NEGATIVE) if label == "positive" else (_NEGATIVE, _POSITIVE)
    # 15% of the second phrases carry the other polarity: the task is not trivially separable.
    second = rng.choice(bad if rng.random() < 0.15 else good)
    return rng.choice(_TEMPLATES).format(noun=rng.choice(domain["nouns"]), topic=rng.choice(domain["topics"]),
                                         phrase=rng.choice(good), phrase2=second)


def _news(rng: random.Random, label: str) -> str:
    words = _TOPICS[label]
    return f"the {rng.choice(words)} and the {rng.choice(words)} made news as the {rng.choice(words)} reported today."


def _rows(name: str, split: str, n: int) -> list[dict[str, str]]:
    rng = random.Random(f"{name}/{split}/{VERSION}")
    rows = []
    for i in range(n):
        if name == "news":
            label = list(_TOPICS)[i % len(_TOPICS)]
            text = _news(rng, label)
        else:
            label = "positive" if i % 2 == 0 else "negative"
            text = _review(rng, DOMAINS[name], label)
        rows.append({"text": text} if split == "unlabeled" else {"text": text, "label": label})
    rng.shuffle(rows)
    return rows


def demo_names() -> list[str]:
    """Names of the demo tasks: the review domains plus a 3-class ``news`` topic task."""
    return [*DOMAINS, "news"]


def ensure_demo_catalog() -> Path:
    """Write the demo catalog if missing (atomically) and return its folder."""
    root = cache_dir() / "demo" / f"v{VERSION}"
    if root.is_dir():
        return root
    with atomic_path(root) as tmp:
        for name in demo_names():
            for split, n in SIZES.items():
                if name == "news" and split == "unlabeled":
                    continue
                folder = tmp / name
                folder.mkdir(parents=True, exist_ok=True)
                lines = (json.dumps(row) for row in _rows(name, split, n))
                (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
