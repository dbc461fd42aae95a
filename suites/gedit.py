"""Loader of GEdit-Bench: the HF dataset ``stepfun-ai/GEdit-Bench`` or a local copy of it.

Rows carry ``key``, ``task_type``, ``instruction``, ``instruction_language`` (``en``/``cn``),
``input_image`` (PIL), ``input_image_raw`` and ``Intersection_exist``. The YAML's ``language``
keeps one language (or ``all``). Item metadata is the row's non-image fields; the input image is
decoded only when :meth:`SuiteItem.load_source_image` asks for it.

A local copy is a ``save_to_disk`` folder, a folder of parquet/arrow/json files, or one such file.
Offline without a local copy, loading fails with one line naming ``--source``.
"""

from __future__ import annotations

from pathlib import Path

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.suites.core import SuiteItem, SuiteSpec, load_hub_dataset, looks_like_hub_id

_FILE_BUILDERS = {".parquet": "parquet", ".arrow": "arrow", ".json": "json", ".jsonl": "json", ".csv": "csv"}


def _load_local(spec: SuiteSpec, path: Path, split: str):
    import datasets

    try:
        if path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()):
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise TmpbenchError(f"{path} has splits {', '.join(ds)}, not {split!r}; set the suite's hf_split")
                ds = ds[split]
            return ds
        if path.is_dir():
            return datasets.load_dataset(str(path), split=split)
        builder = _FILE_BUILDERS.get(path.suffix)
        if builder is None:
            raise TmpbenchError(f"{path}: not a GEdit-Bench copy; pass a dataset folder or a {'/'.join(_FILE_BUILDERS)} file")
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    except TmpbenchError:
        raise
    except Exception as exc:
        raise DataFormatError(f"{path}: cannot read as a GEdit-Bench dataset ({type(exc).__name__}: {exc})") from None


def load(spec: SuiteSpec, source: str | None) -> list[SuiteItem]:
    src = source if source is not None else spec.source
    split = spec.option("hf_split", "train")
    if src is None:
        raise TmpbenchError(f"{spec.name}: no source; pass --source PATH to a local copy of stepfun-ai/GEdit-Bench")
    if looks_like_hub_id(src):
        ds = load_hub_dataset(spec, src, None, split, "a local copy of the dataset (a save_to_disk or parquet folder)")
    else:
        path = Path(src)
        if not path.exists():
            raise TmpbenchError(f"{spec.name}: {path} not found; pass --source PATH to a local copy of stepfun-ai/GEdit-Bench")
        ds = _load_local(spec, path, split)

    id_field, prompt_field = spec.option("id_field"), spec.option("prompt_field")
    category_field, image_field = spec.option("category_field"), spec.option("image_field")
    needed = [id_field, prompt_field, category_field, "instruction_language"]
    missing = [c for c in needed + [image_field] if c not in ds.column_names]
    if missing:
        raise DataFormatError(
            f"{src}: missing columns {', '.join(missing)} (found: {', '.join(ds.column_names)})"
        )
    language = spec.language  # a core trait of the YAML: en, cn, or all
    text_columns = [c for c in ds.column_names if c not in (image_field, "input_image_raw")]
    table = ds.select_columns(text_columns)  # no image decoding while listing
    items: list[SuiteItem] = []
    for row_index, row in enumerate(table):
        if language != "all" and row["instruction_language"] != language:
            continue
        if not row[prompt_field]:
            raise DataFormatError(f"{src}: row {row_index} has an empty {prompt_field}")
        i = len(items)
        items.append(
            spec.item(
                i,
                id=str(row[id_field]),
                category=str(row[category_field]),
                prompt=str(row[prompt_field]),
                metadata={k: row[k] for k in text_columns},
                source_image=_ImageRef(ds, row_index, image_field),
            )
        )
    if not items:
        raise DataFormatError(f"{src}: no rows with instruction_language {language!r}")
    return items


class _ImageRef:
    """Decodes one row's input image on call, so listing the suite decodes none."""

    def __init__(self, ds, row: int, column: str) -> None:
        self.ds, self.row, self.column = ds, row, column

    def __call__(self):
        return self.ds[self.row][self.column]

    def __repr__(self) -> str:
        return f"<GEdit-Bench image row {self.row}>"
