"""Loader of ImgEdit Basic: ``basic_edit.json`` plus the folder of input images.

The JSON maps a key (``"1082"``) to ``{"id": "<subfolder>/<image>.jpg", "prompt": <instruction>,
"edit_type": <type>}``. Items keep the file's order; the item id is the key, the category the edit
type, the metadata the record plus its ``key``. The input image is ``image_root / record["id"]``
(``image_root`` from the YAML or ``--image-root``, relative to the JSON's folder unless absolute); it
is not checked here, so prompts can be listed without the images: ``tmpbench run``/``generate``
check every input image right after loading the suite, before any model loads.
"""

from __future__ import annotations

from pathlib import Path

from tmpbench.errors import DataFormatError
from tmpbench.suites.core import SuiteItem, SuiteSpec, parse_json, read_text_file, resolve_local_file


def load(spec: SuiteSpec, source: str | None) -> list[SuiteItem]:
    path = resolve_local_file(spec, source, spec.option("filename", "basic_edit.json"))
    data = parse_json(read_text_file(path), str(path))  # BOM, CRLF tolerated; duplicate keys refused
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
