"""Loaders of the real benchmark formats, on tiny files written under tmp_path."""

import json

import numpy as np
import pytest
from PIL import Image

from tmpbench.errors import DataFormatError, OfflineError, TmpbenchError
from tmpbench.suites.core import load_suite

GENEVAL_LINES = [
    {"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"},
    {"tag": "counting", "include": [{"class": "cow", "count": 2}], "exclude": [{"class": "cow", "count": 3}],
     "prompt": "a photo of two cows"},
    {"tag": "position", "include": [{"class": "cat", "count": 1}, {"class": "dog", "count": 1, "position": ["left of", 0]}],
     "prompt": "a photo of a dog left of a cat"},
]


def _jsonl(path, records, raw_line=None, at=None):
    lines = [json.dumps(r) for r in records]
    if raw_line is not None:
        lines.insert(at, raw_line)
    path.write_text("\n".join(lines) + "\n")
    return path


# --- geneval ----------------------------------------------------------------------------------


def test_geneval_reads_records_unchanged(tmp_path):
    path = _jsonl(tmp_path / "evaluation_metadata.jsonl", GENEVAL_LINES)
    suite = load_suite("geneval", source=path)
    assert [it.metadata for it in suite.items] == GENEVAL_LINES
    assert [it.id for it in suite.items] == ["00000", "00001", "00002"]
    assert suite.categories == {"single_object": 1, "counting": 1, "position": 1}
    assert suite.items[1].prompt == "a photo of two cows"
    assert load_suite("geneval", source=tmp_path).hash == suite.hash  # a folder holding the file


def test_geneval_malformed_line_names_the_line(tmp_path):
    path = _jsonl(tmp_path / "m.jsonl", GENEVAL_LINES, raw_line='{"tag": "colors", "prompt": ', at=1)
    with pytest.raises(DataFormatError, match=r"m\.jsonl:2: malformed JSON"):
        load_suite("geneval", source=path)
    no_include = {"tag": "colors", "prompt": "a photo of a red car"}
    path = _jsonl(tmp_path / "n.jsonl", [*GENEVAL_LINES, no_include])
    with pytest.raises(DataFormatError, match=r"n\.jsonl:4: missing or empty 'include'"):
        load_suite("geneval", source=path)
    bad_count = {"tag": "counting", "prompt": "x", "include": [{"class": "cow", "count": "two"}]}
    with pytest.raises(DataFormatError, match=r"o\.jsonl:1: every 'include' entry needs 'class' and an integer 'count'"):
        load_suite("geneval", source=_jsonl(tmp_path / "o.jsonl", [bad_count]))


def test_geneval_missing_file_names_the_flag(tmp_path):
    with pytest.raises(TmpbenchError, match=r"geneval: .*nowhere\.jsonl not found; pass --source PATH to evaluation_metadata\.jsonl"):
        load_suite("geneval", source=tmp_path / "nowhere.jsonl")
    with pytest.raises(TmpbenchError, match=r"evaluation_metadata\.jsonl not found"):
        load_suite("geneval", source=tmp_path)  # a folder without the file


# --- oneig ------------------------------------------------------------------------------------

ONEIG_EN = (
    "category,id,prompt_en,type,prompt_length,class\n"
    'Anime_Stylization,000,"1girl, solo, anime",T,short,\n'
    "Anime_Stylization,001,a cat in ukiyo-e style,T,short,\n"
    "Text_Rendering,000,a poster that says HELLO,T,middle,poster design\n"
)
ONEIG_ZH = "category,id,prompt_cn,class\nMultilingualism,007,热闹的颁奖典礼现场,\nPortrait,000,一位老人的肖像,\n"


def test_oneig_en_keeps_string_ids_and_rows(tmp_path):
    (tmp_path / "OneIG-Bench.csv").write_text(ONEIG_EN, encoding="utf-8")
    suite = load_suite("oneig", source=tmp_path)
    assert [it.id for it in suite.items] == ["000", "001", "000"]
    assert suite.categories == {"Anime_Stylization": 2, "Text_Rendering": 1}
    assert suite.items[0].prompt == "1girl, solo, anime"
    assert suite.items[2].metadata == {
        "category": "Text_Rendering", "id": "000", "prompt_en": "a poster that says HELLO",
        "type": "T", "prompt_length": "middle", "class": "poster design",
    }


def test_oneig_zh_variant_reads_prompt_cn(tmp_path):
    path = tmp_path / "OneIG-Bench-ZH.csv"
    path.write_text("\ufeff" + ONEIG_ZH, encoding="utf-8")  # with a byte-order mark
    suite = load_suite("oneig-zh", source=path)
    assert [(it.category, it.id, it.prompt) for it in suite.items] == [
        ("Multilingualism", "007", "热闹的颁奖典礼现场"), ("Portrait", "000", "一位老人的肖像"),
    ]
    assert load_suite("oneig-zh", source=tmp_path).hash == suite.hash


def test_oneig_wrong_columns_name_the_missing_ones(tmp_path):
    path = tmp_path / "OneIG-Bench-ZH.csv"
    path.write_text(ONEIG_ZH, encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"missing columns prompt_en, type, prompt_length \(found: category, id, prompt_cn, class\)"):
        load_suite("oneig", source=path)  # the ZH file given to the EN suite


def test_oneig_bad_rows_name_the_line(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(ONEIG_EN + "Portrait,002,too,few\n")
    with pytest.raises(DataFormatError, match=r"a\.csv:5: 4 fields where the header has 6"):
        load_suite("oneig", source=path)
    path.write_text(ONEIG_EN + "Anime_Stylization,001,again,T,short,\n")
    with pytest.raises(DataFormatError, match=r"a\.csv:5: duplicate \(category, id\) \('Anime_Stylization', '001'\)"):
        load_suite("oneig", source=path)
    path.write_text(ONEIG_EN + "Portrait,003,,T,short,\n")
    with pytest.raises(DataFormatError, match=r"a\.csv:5: empty prompt_en"):
        load_suite("oneig", source=path)


def test_oneig_hub_offline_names_the_flag():
    # conftest sets HF_HUB_OFFLINE=1 and the dataset is not cached here
    with pytest.raises(OfflineError, match=r"'OneIG-Bench/OneIG-Bench' is not available .*pass --source PATH to OneIG-Bench\.csv"):
        load_suite("oneig")


# --- imgedit ----------------------------------------------------------------------------------

IMGEDIT = {
    "12": {"id": "animal/0001.jpg", "prompt": "Add a hat to the dog.", "edit_type": "add"},
    "7": {"id": "style/0002.jpg", "prompt": "Make it a watercolour.", "edit_type": "style"},
    "30": {"id": "animal/0003.jpg", "prompt": "Remove the bird.", "edit_type": "remove"},
}


def test_imgedit_items_and_source_images(tmp_path):
    (tmp_path / "basic_edit.json").write_text(json.dumps(IMGEDIT))
    root = tmp_path / "Benchmark" / "singleturn" / "animal"
    root.mkdir(parents=True)
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(root / "0001.jpg")
    suite = load_suite("imgedit", source=tmp_path)
    assert suite.kind == "edit"
    assert [(it.id, it.category) for it in suite.items] == [("12", "add"), ("7", "style"), ("30", "remove")]
    assert suite.items[0].metadata == {**IMGEDIT["12"], "key": "12"}
    assert suite.items[0].load_source_image().size == (8, 8)
    with pytest.raises(TmpbenchError, match=r"source image .*style/0002\.jpg of item '7' not found; set the suite's image_root"):
        suite.items[1].load_source_image()
    moved = load_suite("imgedit", source=tmp_path / "basic_edit.json", overrides={"image_root": "/data/imgs"})
    assert str(moved.items[1].source_image) == "/data/imgs/style/0002.jpg"
    assert moved.hash == suite.hash  # where the images live is not part of the content


def test_imgedit_bad_entries(tmp_path):
    path = tmp_path / "basic_edit.json"
    path.write_text(json.dumps({"1": {"id": "a.jpg", "prompt": "x"}}))
    with pytest.raises(DataFormatError, match=r"basic_edit\.json: entry '1' lacks edit_type"):
        load_suite("imgedit", source=path)
    path.write_text('{"1": {"id": "a.jpg",\n "prompt": }')
    with pytest.raises(DataFormatError, match=r"basic_edit\.json:2: malformed JSON"):
        load_suite("imgedit", source=path)


# --- gedit ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gedit_copy(tmp_path_factory):
    import datasets

    rows = {
        "key": ["a1", "a1", "b2"],
        "task_type": ["color_alter", "color_alter", "subject-add"],
        "instruction": ["make the car red", "把车变成红色", "add a cat on the sofa"],
        "instruction_language": ["en", "cn", "en"],
        "Intersection_exist": [True, True, False],
        "input_image": [Image.fromarray(np.full((6, 6, 3), v, np.uint8)) for v in (10, 10, 90)],
        "input_image_raw": [Image.fromarray(np.full((6, 6, 3), v, np.uint8)) for v in (10, 10, 90)],
    }
    features = datasets.Features(
        {
            "key": datasets.Value("string"), "task_type": datasets.Value("string"),
            "instruction": datasets.Value("string"), "instruction_language": datasets.Value("string"),
            "Intersection_exist": datasets.Value("bool"),
            "input_image": datasets.Image(), "input_image_raw": datasets.Image(),
        }
    )
    path = tmp_path_factory.mktemp("gedit") / "GEdit-Bench"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(str(path))
    return path


def test_gedit_local_copy_by_language(gedit_copy):
    en = load_suite("gedit", source=gedit_copy)
    assert [(it.id, it.category, it.prompt) for it in en.items] == [
        ("a1", "color_alter", "make the car red"), ("b2", "subject-add", "add a cat on the sofa"),
    ]
    assert en.items[1].metadata == {
        "key": "b2", "task_type": "subject-add", "instruction": "add a cat on the sofa",
        "instruction_language": "en", "Intersection_exist": False,
    }
    image = en.items[1].load_source_image()
    assert image.size == (6, 6) and image.getpixel((0, 0)) == (90, 90, 90)
    cn = load_suite("gedit-cn", source=gedit_copy)
    assert [it.prompt for it in cn.items] == ["把车变成红色"]
    assert cn.hash != en.hash


def test_gedit_offline_and_missing(tmp_path):
    with pytest.raises(OfflineError, match=r"'stepfun-ai/GEdit-Bench' is not available \(offline .*pass --source PATH"):
        load_suite("gedit")
    with pytest.raises(TmpbenchError, match=r"nowhere not found; pass --source PATH to a local copy"):
        load_suite("gedit", source=tmp_path / "nowhere")
