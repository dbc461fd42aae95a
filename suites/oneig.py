"""Loader of OneIG-Bench prompts: the EN or ZH CSV, or the HF dataset ``OneIG-Bench/OneIG-Bench``.

EN columns: ``category,id,prompt_en,type,prompt_length,class``; ZH: ``category,id,prompt_cn,class``
(the YAML's ``columns``). Every value is read as a string, so ids keep their zeros (``"000"``);
ids repeat across categories, so ``(category, id)`` is the key, as in OneIG's own image paths
``images/<category>/<model>/<id>.webp``. An item's metadata is its row, unchanged.
"""

from __future__ import annotations

import csv
import io

from tmpbench.errors import DataFormatError
from tmpbench.suites.core import SuiteItem, SuiteSpec, load_hub_dataset, looks_like_hub_id, read_text_file, resolve_local_file


def load(spec: SuiteSpec, source: str | None) -> list[SuiteItem]:
    filename = spec.option("filename")
    src = source if source is not None else spec.source
    if src is not None and looks_like_hub_id(src):
        ds = load_hub_dataset(spec, src, spec.option("hf_config", None), spec.option("hf_split", "train"), filename)
        rows = [(n + 1, {k: "" if v is None else str(v) for k, v in row.items()}) for n, row in enumerate(ds)]
        return _items(spec, f"{src}[{spec.option('hf_config', None)}]", list(ds.column_names), rows, "row")
    path = resolve_local_file(spec, source, filename)
    try:
        with io.StringIO(read_text_file(path), newline="") as fh:  # a BOM before 'category' and CRLF tolerated
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                raise DataFormatError(f"{path}: empty CSV; expected the header {','.join(spec.option('columns'))}") from None
            rows = []
            for fields in reader:
                if not any(f.strip() for f in fields):
                    continue
                if len(fields) != len(header):
                    raise DataFormatError(
                        f"{path}:{reader.line_num}: {len(fields)} fields where the header has {len(header)}"
                    )
                rows.append((reader.line_num, dict(zip(header, fields))))
    except csv.Error as exc:  # e.g. an unclosed quote or a NUL byte
        raise DataFormatError(f"{path}: malformed CSV ({exc})") from None
    return _items(spec, str(path), header, rows, "line")


def _items(spec: SuiteSpec, where: str, header: list[str], rows: list[tuple[int, dict]], unit: str) -> list[SuiteItem]:
    columns = list(spec.option("columns"))
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataFormatError(
            f"{where}: missing columns {', '.join(missing)} (found: {', '.join(header)}); "
            f"suite {spec.name!r} needs {','.join(columns)}"
        )
    prompt_field = spec.option("prompt_field")
    seen: dict[tuple[str, str], int] = {}
    items: list[SuiteItem] = []
    for lineno, row in rows:
        key = (row["category"], row["id"])
        if not row["category"] or not row["id"]:
            raise DataFormatError(f"{where}:{lineno}: empty category or id")
        if not row[prompt_field].strip():
            raise DataFormatError(f"{where}:{lineno}: empty {prompt_field}")
        if key in seen:
            raise DataFormatError(f"{where}:{lineno}: duplicate (category, id) {key} (first at {unit} {seen[key]})")
        seen[key] = lineno
        i = len(items)
        items.append(spec.item(i, id=row["id"], category=row["category"], prompt=row[prompt_field], metadata=row))
    return items


