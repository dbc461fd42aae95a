"""OneIG-Bench's maths, re-implemented from the benchmark's description and scripts (pure functions).

* **alignment** -- :func:`alignment_score`: the mean of a VQA judge's yes/no answers over a
  prompt's questions, a question zeroed when a parent question (``dependency``, 0 = none) was "no";
* **text** -- :func:`text_score` ``= 1 - min(M, ED) * (1 - CR) * (1 - WAC) / M`` from the edit
  distance ED (:func:`levenshtein`), completion rate CR (ED == 0) and word accuracy WAC
  (:func:`word_matches`), M = 100 (EN) or 50 (ZH), both sides through :func:`normalise_text`;
* **reasoning** -- :func:`reasoning_cell_score`: the plain cosine of a cell's image embedding and
  the reference answer's text embedding (no scaling, no clipping);
* **style** -- :func:`style_cell_score` ``= (max(max_r CSD.ref_r, 0) + max(max_r SE.ref_r, 0)) / 2``;
  :func:`style_key` maps OneIG-Bench.csv's ``class`` to the reference dicts' keys;
* **diversity** -- :func:`mean_pairwise_distance`: the mean ``1 - cos`` over pairs of a prompt's cells;
* **cells** -- :func:`oneig_cell`: OneIG drops all-black cells and writes the rest as JPEG (PIL's
  defaults) before its encoders read them back; the same round trip happens here in memory.

>>> text_score(0.0, 1.0, 1.0)
1.0
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from tmpbench.errors import TmpbenchError


def alignment_score(answers: dict[int, float], dependencies: dict[int, Sequence[int]]) -> float:
    """Mean over questions of the answers, a question zeroed when any parent (id != 0) scored 0.

    >>> alignment_score({1: 1.0, 2: 1.0, 3: 1.0}, {1: [0], 2: [1], 3: [1]})
    1.0
    >>> alignment_score({1: 0.0, 2: 1.0, 3: 1.0}, {1: [0], 2: [1], 3: [0]})
    0.3333333333333333
    """
    if not answers:
        raise ValueError("alignment_score needs at least one answered question")
    filtered = dict(answers)
    for qid, parents in dependencies.items():
        if qid in filtered and any(p != 0 and answers.get(p, 1.0) == 0 for p in parents):
            filtered[qid] = 0.0
    return float(sum(filtered.values()) / len(filtered))


def levenshtein(a: str, b: str) -> int:
    """Character edit distance (insert, delete, substitute all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def word_matches(ground_truth: str, ocr: str) -> tuple[int, int]:
    """``(ground-truth words found in the OCR, counted with multiplicity; ground-truth words)``."""
    gt, found = Counter(ground_truth.split()), Counter(ocr.split())
    return sum(min(n, found[w]) for w, n in gt.items()), sum(gt.values())


def text_score(ed: float, cr: float, wac: float, max_edit_distance: int = 100) -> float:
    """OneIG's text score ``1 - min(M, ED) * (1 - CR) * (1 - WAC) / M``.

    >>> text_score(0.0, 1.0, 1.0)
    1.0
    >>> text_score(200.0, 0.0, 0.0)
    0.0
    """
    return 1.0 - min(max_edit_distance, ed) * (1.0 - cr) * (1.0 - wac) / max_edit_distance


def normalise_text(text: str) -> str:
    """Lower-case, collapse whitespace (the comparison both sides go through)."""
    return " ".join(str(text).lower().split())


def mean_pairwise_distance(embeddings) -> float:
    """Mean over pairs of ``1 - cos`` between rows (diversity of one prompt's images)."""
    import torch

    e = torch.as_tensor(embeddings, dtype=torch.float64)
    e = e / e.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    n = e.shape[0]
    if n < 2:
        raise ValueError("diversity needs at least two images")
    sim = e @ e.T
    iu = torch.triu_indices(n, n, 1)
    return float((1.0 - sim[iu[0], iu[1]]).mean())


def is_black(image: np.ndarray) -> bool:
    """True when every pixel is exactly (0, 0, 0): OneIG drops such cells (``is_black_image``)."""
    return not np.any(np.asarray(image))


def oneig_cell(image: np.ndarray, jpeg: bool = True):
    """The PIL image OneIG's encoders see for one cell, or None for an all-black cell.

    OneIG saves each cell with ``PIL.Image.save("<n>.jpg")`` (quality 75) and re-opens it; the same
    encode/decode happens here in memory.
    """
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise TmpbenchError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    if is_black(image):
        return None
    pil = Image.fromarray(image)
    if not jpeg:
        return pil
    buf = io.BytesIO()
    pil.save(buf, format="JPEG")
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def _unit(x) -> "Any":
    import torch

    x = torch.as_tensor(x).to(torch.float64).reshape(-1)
    return x / x.norm().clamp_min(1e-12)


def reasoning_cell_score(image_embedding, text_embedding) -> float:
    """Cosine of one cell's image embedding and the answer's text embedding (OneIG: no clipping)."""
    return float(_unit(image_embedding) @ _unit(text_embedding))


def max_reference_similarity(embedding, references) -> float:
    """``max(max_r embedding . reference_r, 0)``: embeddings are used as given (both sides unit-norm in OneIG)."""
    import torch

    e = torch.as_tensor(embedding).to(torch.float64).reshape(-1)
    r = torch.as_tensor(references).to(torch.float64).reshape(-1, e.shape[0])
    return max(float((r @ e).max()), 0.0)


def style_cell_score(csd_embedding, csd_references, se_embedding, se_references) -> float:
    """OneIG's style score of one cell: the mean of CSD's and the StyleEncoder's clipped best match."""
    return (max_reference_similarity(csd_embedding, csd_references) + max_reference_similarity(se_embedding, se_references)) / 2


def style_key(style_class: str | None) -> str | None:
    """OneIG's key into the reference dicts (``"Chinese ink painting"`` -> ``"chinese_ink_painting"``); None if empty."""
    s = "" if style_class is None else str(style_class)
    if not s.strip() or s[:3] == "nan":
        return None
    return s.lower().replace(" ", "_")


def pairwise_cosine_distance(embeddings) -> float:
    """Mean over pairs i < j of ``1 - cos(e_i, e_j)`` (DreamSim's distance, averaged as OneIG does)."""
    return mean_pairwise_distance(embeddings)
