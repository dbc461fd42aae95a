"""Loader of ImgEdit Basic: ``basic_edit.json`` plus the folder of input images.

The JSON maps a key (``"1082"``) to ``{"id": "<subfolder>/<image>.jpg", "prompt": <instruction>,
"edit_type": <type>}``. Items keep the file's order; the item id is the key, the category the edit
type, the metadata the record plus its ``key``. The input image is ``image_root / record["id"]``
(``image_root`` from the YAML, relative to the JSON's folder unless absolute); it is checked when
it is loaded, not here, so prompts can be listed without the images.
"""

from __future__ import annotations

import json
from pathlib import Path

from tmpbench.errors import DataFormatError
from tmpbench.suites.core import SuiteItem, SuiteSpec, resolve_local_file


def load(spec: SuiteSpec, source: str | None) -> list[SuiteItem]:
    path = resolve_local_file(spec, source, spec.option("filename", "basic_edit.json"))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: expected a JSON object mapping keys to edits, got {type(data).__name__}")
    root = Path(spec.option("image_root", "."))
    if not root.is_absolute():
        root = path.parent / root
    prompt_field = spec.option("prompt_field", "prompt")
    category_field = spec.option("category_field", "edit_type")
    items: list[SuiteItem] = []
    for key, record in data.items():
        if not isinstance(record, dict):
            raise DataFormatError(f"{path}: entry {key!r} must be an object, got {type(record).__name__}")
        absent = [f for f in ("id", prompt_field, category_field) if not isinstance(record.get(f), str) or not record[f]]
        if absent:
            raise DataFormatError(f"{path}: entry {key!r} lacks {', '.join(absent)}")
        i = len(items)
        items.append(
            spec.item(
                i,
                id=key,
                category=record[category_field],
                prompt=record[prompt_field],
                metadata={**record, "key": key},
                source_image=root / record["id"],
            )
        )
    return items
