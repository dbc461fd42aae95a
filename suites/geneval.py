"""Loader of GenEval's ``evaluation_metadata.jsonl``: one GenEval record per line, read as-is.

Each line is ``{"tag", "prompt", "include": [{"class", "count", "color"?, "position"?}], "exclude"?}``.
The item's metadata is the record unchanged (what GenEval's evaluator reads beside the images),
its category the tag, its id the 0-based line position (``"00000"``), as GenEval numbers folders.
"""

from __future__ import annotations

from tmpbench.errors import DataFormatError
from tmpbench.suites.core import SuiteItem, SuiteSpec, parse_json, read_text_file, resolve_local_file


def load(spec: SuiteSpec, source: str | None) -> list[SuiteItem]:
    path = resolve_local_file(spec, source, spec.option("filename", "evaluation_metadata.jsonl"))
    items: list[SuiteItem] = []
    for lineno, line in enumerate(read_text_file(path).splitlines(), start=1):  # BOM and CRLF tolerated
        if not line.strip():
            continue
        record = parse_json(line, f"{path}:{lineno}", one_line=True)
        problem = _check_record(record)
        if problem:
            raise DataFormatError(f"{path}:{lineno}: {problem}")
        i = len(items)
        items.append(spec.item(i, id=f"{i:05d}", category=record["tag"], prompt=record["prompt"], metadata=record))
    return items


def _check_record(record) -> str | None:
    """What is wrong with a GenEval record, or None."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    for key in ("tag", "prompt"):
        if not isinstance(record.get(key), str) or not record[key]:
            return f"missing or empty {key!r}"
    for key in ("include", "exclude"):
        reqs = record.get(key, [])
        if key == "include" and not reqs:
            return "missing or empty 'include'"
        if not isinstance(reqs, list):
            return f"{key!r} must be a list"
        for req in reqs:
            if not isinstance(req, dict) or "class" not in req or not isinstance(req.get("count"), int):
                return f"every {key!r} entry needs 'class' and an integer 'count', got {req!r}"
    return None
