"""Malformed benchmark files end in one TmpbenchError line, never another exception (issue 15).

Hypothesis writes random bytes, truncations of a valid file, wrong JSON types, missing keys or
columns, other encodings and duplicate keys for every file-reading loader (geneval, oneig,
oneig-zh, imgedit). gedit is not fuzzed: its local source is read by `datasets` (parquet, JSON or
save_to_disk; ~0.5 s a load, a reader that is not ours), so its row checks get fixed cases at the end.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.suites.core import load_suite

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

GENEVAL = "\n".join(
    json.dumps(r)
    for r in [
        {"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"},
        {"tag": "counting", "include": [{"class": "cow", "count": 2}], "prompt": "a photo of two cows"},
    ]
) + "\n"
IMGEDIT = json.dumps(
    {
        "1": {"id": "a/1.jpg", "prompt": "make it red", "edit_type": "alter"},
        "2": {"id": "a/2.jpg", "prompt": "remove the cat", "edit_type": "remove"},
    }
)
ONEIG = "category,id,prompt_en,type,prompt_length,class\nAnime,000,a cat,x,short,c\nPortrait,000,a man,y,long,d\n"
ONEIG_ZH = "category,id,prompt_cn,class\nAnime,000,一只猫,c\nPortrait,000,一个人,d\n"

#: suite name -> (file name, a valid text)
VALID = {
    "geneval": ("evaluation_metadata.jsonl", GENEVAL),
    "imgedit": ("basic_edit.json", IMGEDIT),
    "oneig": ("OneIG-Bench.csv", ONEIG),
    "oneig-zh": ("OneIG-Bench-ZH.csv", ONEIG_ZH),
}
SUITES = sorted(VALID)


def _load(tmp_path, name, data: bytes):
    path = tmp_path / VALID[name][0]
    path.write_bytes(data)
    return load_suite(name, source=path)


def _loads_or_one_line(tmp_path, name, data: bytes) -> None:
    """The file loads, or fails with a one-line TmpbenchError naming the file."""
    try:
        _load(tmp_path, name, data)
    except TmpbenchError as exc:
        msg = str(exc)
        assert "\n" not in msg.strip(), msg
        assert VALID[name][0] in msg or name in msg, msg


@pytest.mark.parametrize("name", SUITES)
def test_valid_files_load_with_bom_and_crlf(tmp_path, name):
    text = VALID[name][1]
    plain = _load(tmp_path, name, text.encode())
    for variant in (b"\xef\xbb\xbf" + text.encode(), text.replace("\n", "\r\n").encode(),
                    b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()):
        suite = _load(tmp_path, name, variant)
        assert suite.hash == plain.hash and len(suite.items) == 2


@pytest.mark.parametrize("name", SUITES)
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_is_named(tmp_path, name, encoding):
    with pytest.raises(DataFormatError, match=r"looks like UTF-16 .*re-save it as UTF-8"):
        _load(tmp_path, name, VALID[name][1].encode(encoding))


@pytest.mark.parametrize("name", SUITES)
def test_latin1_is_named(tmp_path, name):
    text = VALID[name][1].replace("a cat", "a café").replace("make it red", "make it café").replace(
        "a photo of a bench", "a café bench"
    )
    text = "".join(c if ord(c) < 256 else "é" for c in text)  # oneig-zh: Chinese -> é
    with pytest.raises(DataFormatError, match=r"not UTF-8 \(byte 0xe9 .*latin-1 or cp1252\?\); re-save it as UTF-8"):
        _load(tmp_path, name, text.encode("latin-1"))


def test_imgedit_duplicate_key_is_named(tmp_path):
    text = IMGEDIT[:-1] + ', "2": {"id": "b.jpg", "prompt": "p", "edit_type": "t"}}'
    with pytest.raises(DataFormatError, match=r"basic_edit.json: duplicate key '2'"):
        _load(tmp_path, "imgedit", text.encode())


def test_geneval_duplicate_key_is_named(tmp_path):
    line = '{"tag": "a", "tag": "b", "include": [{"class": "x", "count": 1}], "prompt": "p"}\n'
    with pytest.raises(DataFormatError, match=r"evaluation_metadata.jsonl:1: duplicate key 'tag'"):
        _load(tmp_path, "geneval", line.encode())


def test_malformed_json_message_has_no_doubled_at(tmp_path):
    with pytest.raises(DataFormatError, match=r"jsonl:1: malformed JSON \(Invalid control character at column 10\)$") as e:
        _load(tmp_path, "geneval", b'{"tag": "\x01"}\n')
    assert "at at" not in str(e.value)


def test_nan_is_refused(tmp_path):
    with pytest.raises(DataFormatError, match=r"NaN is not valid JSON"):
        _load(tmp_path, "geneval", b'{"tag": "a", "prompt": "p", "include": [{"class": "x", "count": NaN}]}\n')


@pytest.mark.parametrize("name", SUITES)
@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes(tmp_path, name, data):
    _loads_or_one_line(tmp_path, name, data)


@pytest.mark.parametrize("name", SUITES)
@FUZZ
@given(cut=st.integers(min_value=0, max_value=400), bom=st.booleans(), crlf=st.booleans())
def test_truncations(tmp_path, name, cut, bom, crlf):
    text = VALID[name][1]
    raw = (b"\xef\xbb\xbf" if bom else b"") + (text.replace("\n", "\r\n") if crlf else text).encode()
    _loads_or_one_line(tmp_path, name, raw[:cut])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(record=st.dictionaries(st.sampled_from(["tag", "prompt", "include", "exclude", "x"]), JSON_VALUES, max_size=5))
def test_geneval_wrong_types_and_missing_keys(tmp_path, record):
    _loads_or_one_line(tmp_path, "geneval", (json.dumps(record) + "\n").encode())


@FUZZ
@given(data=JSON_VALUES | st.dictionaries(
    st.text(max_size=4),
    st.dictionaries(st.sampled_from(["id", "prompt", "edit_type", "x"]), JSON_VALUES, max_size=4),
    max_size=3,
))
def test_imgedit_wrong_types_and_missing_keys(tmp_path, data):
    _loads_or_one_line(tmp_path, "imgedit", json.dumps(data).encode())


@pytest.mark.parametrize("name", ["oneig", "oneig-zh"])
@FUZZ
@given(drop=st.sets(st.integers(min_value=0, max_value=5), min_size=1), rows=st.lists(
    st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=5), max_size=7), max_size=3))
def test_oneig_missing_columns_and_ragged_rows(tmp_path, name, drop, rows):
    header = VALID[name][1].splitlines()[0].split(",")
    kept = [c for i, c in enumerate(header) if i not in drop]
    lines = [",".join(kept)] + [",".join(r) for r in rows]
    _loads_or_one_line(tmp_path, name, ("\n".join(lines) + "\n").encode())


@pytest.mark.parametrize("name", SUITES)
@FUZZ
@given(encoding=st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "shift_jis", "gb18030"]),
       extra=st.text(min_size=1, max_size=5))
def test_other_encodings(tmp_path, name, encoding, extra):
    text = VALID[name][1].replace("a ", f"a {extra} ", 1)
    try:
        raw = text.encode(encoding)
    except UnicodeEncodeError:
        return
    _loads_or_one_line(tmp_path, name, raw)


# --- gedit: a local copy is a `datasets` folder or file; its row checks, without hypothesis -------
# (each load goes through `datasets`, ~0.5 s, too slow for hundreds of generated examples)

GEDIT_ROW = {"key": "k1", "instruction": "make it red", "task_type": "color_alter", "instruction_language": "en",
             "input_image": "x.png"}


@pytest.mark.parametrize(("rows", "match"), [
    ([{k: v for k, v in GEDIT_ROW.items() if k != "instruction"}], r"missing columns instruction"),
    ([{**GEDIT_ROW, "instruction": ""}], r"row 0 has an empty instruction"),
    ([{**GEDIT_ROW, "instruction_language": "cn"}], r"no rows with instruction_language 'en'"),
])
def test_gedit_local_rows(tmp_path, rows, match):
    path = tmp_path / "gedit.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataFormatError, match=match):
        load_suite("gedit", source=path)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_gedit_local_garbage(tmp_path, suffix):
    path = tmp_path / f"gedit{suffix}"
    path.write_bytes(b"\x00\xffnot a dataset\x01")
    with pytest.raises(TmpbenchError, match=r"gedit\.(parquet|jsonl)"):
        load_suite("gedit", source=path)
