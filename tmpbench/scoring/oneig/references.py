"""OneIG-Bench's reference files: where they are found and how they are read (one line per bad entry).

===================================  ===========================================================
``TMPBENCH_ONEIG_SCRIPTS``           OneIG's ``scripts/`` folder (or the repository root): answers
                                     and style references are read from it
``TMPBENCH_ONEIG_REASONING_ANSWERS`` a ``gt_answer[_zh].json`` file (overrides the scripts folder)
``TMPBENCH_ONEIG_STYLE_REFS``        a folder with ``CSD_embed.pt`` and ``SE_embed.pt``
``TMPBENCH_ONEIG_QD_DIR``            OneIG's ``scripts/alignment/Q_D`` folder (alignment questions)
``TMPBENCH_ONEIG_TEXT_CSV``          OneIG's ``scripts/text/text_content[_zh].csv`` (text ground truth)
===================================  ===========================================================

* reasoning answers, ``gt_answer[_zh].json``: ``{"<3-digit id>": "<answer text>"}``;
* style references, ``CSD_embed.pt`` / ``SE_embed.pt``: ``torch.save``'d dicts ``{style_key: Tensor
  (3, 768)}`` (float32) and ``{style_key: Tensor (3, 1280)}`` (bfloat16), saved from CUDA;
* alignment questions, ``Q_D/<category>[_zh].json``: ``{"<id>": {"question": {qid: text},
  "dependency": {qid: [parent qids, 0 = none]}}}`` (either value may be a JSON string);
* text ground truth, ``text_content.csv``: columns ``id`` and ``text_content``.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from tmpbench.errors import DataFormatError, MissingDependencyError
from tmpbench.scoring.base import NotScored

SCRIPTS_ENV = "TMPBENCH_ONEIG_SCRIPTS"
ANSWERS_ENV = "TMPBENCH_ONEIG_REASONING_ANSWERS"
STYLE_REFS_ENV = "TMPBENCH_ONEIG_STYLE_REFS"
QD_ENV = "TMPBENCH_ONEIG_QD_DIR"  # OneIG's scripts/alignment/Q_D folder
TEXT_CSV_ENV = "TMPBENCH_ONEIG_TEXT_CSV"  # OneIG's scripts/text/text_content[_zh].csv


def scripts_dir() -> Path | None:
    """OneIG's ``scripts`` folder from ``$TMPBENCH_ONEIG_SCRIPTS`` (the repository root also works)."""
    raw = os.environ.get(SCRIPTS_ENV)
    if not raw:
        return None
    p = Path(raw).expanduser()
    if not (p / "reasoning").is_dir() and not (p / "style").is_dir() and (p / "scripts").is_dir():
        p = p / "scripts"
    return p


def answers_path(zh: bool) -> Path:
    raw = os.environ.get(ANSWERS_ENV)
    if raw:
        return Path(raw).expanduser()
    root = scripts_dir()
    if root is None:
        raise MissingDependencyError(
            f"reasoning needs OneIG's reference answers: set ${SCRIPTS_ENV}=OneIG-Benchmark/scripts or ${ANSWERS_ENV}=gt_answer.json"
        )
    return root / "reasoning" / f"gt_answer{'_zh' if zh else ''}.json"


def style_refs_dir() -> Path:
    raw = os.environ.get(STYLE_REFS_ENV)
    if raw:
        return Path(raw).expanduser()
    root = scripts_dir()
    if root is None:
        raise MissingDependencyError(
            f"style needs OneIG's reference embeddings: set ${SCRIPTS_ENV}=OneIG-Benchmark/scripts or ${STYLE_REFS_ENV}=folder with "
            "CSD_embed.pt"
        )
    return root / "style"


def load_reasoning_answers(path: str | Path) -> dict[str, str]:
    """``gt_answer[_zh].json``: ``{"<id>": "<answer>"}`` -> dict; DataFormatError naming file and key."""
    path = Path(path)
    if not path.is_file():
        raise MissingDependencyError(f"reference answers {path} not found (OneIG's scripts/reasoning/gt_answer.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc}); expected {{\"<id>\": \"<answer text>\"}}") from None
    if not isinstance(data, dict) or not data:
        raise DataFormatError(f"{path}: expected a non-empty JSON object {{\"<id>\": \"<answer text>\"}}, got {type(data).__name__}")
    for key, value in data.items():
        if not isinstance(value, str) or not value.strip():
            raise DataFormatError(
                f"{path}: key {key!r}: expected the answer text (a non-empty string), got {type(value).__name__} {str(value)[:40]!r}"
            )
    return dict(data)


def load_style_references(path: str | Path) -> dict[str, Any]:
    """``CSD_embed.pt`` / ``SE_embed.pt``: ``{style_key: Tensor (n_refs, D)}`` -> float32 CPU tensors.

    OneIG saved them from CUDA; they are mapped to the CPU and read with ``weights_only=True``.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise MissingDependencyError(f"style references {path} not found (OneIG's scripts/style/{path.name})")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; one line names the file
        raise DataFormatError(
            f"{path}: cannot be read as a torch.save'd dict of tensors ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
        ) from None
    if not isinstance(data, dict) or not data:
        raise DataFormatError(f"{path}: expected a dict {{style: Tensor (n, D)}}, got {type(data).__name__}")
    out, dim = {}, None
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor) or value.ndim not in (1, 2) or value.numel() == 0:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise DataFormatError(f"{path}: key {key!r}: expected a (n_refs, D) tensor, got {shape}")
        value = value.detach().float().reshape(-1, value.shape[-1])
        if dim is not None and value.shape[1] != dim:
            raise DataFormatError(f"{path}: key {key!r}: embedding size {value.shape[1]} differs from the others ({dim})")
        dim = value.shape[1]
        out[key] = value
    return out


def read_question_file(category: str, zh: bool) -> dict:
    """The Q_D file of ``category`` from ``$TMPBENCH_ONEIG_QD_DIR`` (NotScored when it is absent)."""
    path = Path(os.environ[QD_ENV]) / f"{category}{'_zh' if zh else ''}.json"
    if not path.is_file():
        raise NotScored(f"question file {path} not found (set ${QD_ENV} to OneIG's scripts/alignment/Q_D)")
    return json.loads(path.read_text(encoding="utf-8"))


def item_questions(questions: dict, category: str, item_id: str) -> tuple[dict[int, str], dict[int, list[int]]]:
    """``({qid: question}, {qid: [parent qids]})`` of one prompt in a loaded Q_D file."""
    entry = questions.get(item_id)
    if entry is None:
        raise DataFormatError(f"{category}: no questions for prompt id {item_id!r} in the Q_D file")
    q, d = entry["question"], entry["dependency"]
    q = json.loads(q) if isinstance(q, str) else q
    d = json.loads(d) if isinstance(d, str) else d
    return {int(k): v for k, v in q.items()}, {int(k): [int(p) for p in v] for k, v in d.items()}


def read_text_contents() -> dict[str, str]:
    """``{prompt id: ground-truth text}`` from ``$TMPBENCH_ONEIG_TEXT_CSV``."""
    with open(os.environ[TEXT_CSV_ENV], encoding="utf-8-sig", newline="") as fh:
        return {row["id"]: row["text_content"] for row in csv.DictReader(fh)}
