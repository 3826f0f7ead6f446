"""Members and non-members through `datasets`: local JSONL, Parquet, Arrow folders; errors."""

from __future__ import annotations

import json

import pytest

from harness.mi.data import MIDataError, MIDataSpec, dataset_digest, load_mi_items


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_two_jsonl_files_members_first_with_a_digest(tmp_path):
    m = _jsonl(tmp_path / "m.jsonl", [{"text": f"member number {i} says hi"} for i in range(4)])
    n = _jsonl(tmp_path / "n.jsonl", [{"text": f"other text {i} here"} for i in range(3)])
    items, info = load_mi_items(MIDataSpec(members=m, nonmembers=n, max_words=3), "split")
    assert [i.id for i in items][:2] == ["m-00000", "m-00001"] and items[-1].id == "n-00002"
    assert items[0].text == "member number 0" and not items[-1].member
    assert (info.n_members, info.n_nonmembers, info.name) == (4, 3, "split")
    assert info.sha256 == dataset_digest(items) and info.source["members"] == m


def test_one_labelled_parquet_file_and_an_arrow_folder(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"input": [f"sentence {i} of many" for i in range(10)],
                                     "label": [i % 2 for i in range(10)]})
    ds.to_parquet(tmp_path / "wiki.parquet")
    spec = MIDataSpec(data=str(tmp_path / "wiki.parquet"), text_field="input")
    items, info = load_mi_items(spec, "wiki")
    assert (info.n_members, info.n_nonmembers) == (5, 5)
    assert {i.text for i in items if i.member} == {f"sentence {i} of many" for i in (1, 3, 5, 7, 9)}
    ds.save_to_disk(str(tmp_path / "saved"))
    again, info2 = load_mi_items(MIDataSpec(data=str(tmp_path / "saved"), text_field="input"), "w")
    assert info2.sha256 == info.sha256 and [i.text for i in again] == [i.text for i in items]


def test_a_seeded_sample_per_class_is_reproducible(tmp_path):
    m = _jsonl(tmp_path / "m.jsonl", [{"text": f"m {i}"} for i in range(30)])
    n = _jsonl(tmp_path / "n.jsonl", [{"text": f"n {i}"} for i in range(30)])
    spec = MIDataSpec(members=m, nonmembers=n, max_per_class=5)
    a, info = load_mi_items(spec, "x")
    b, _ = load_mi_items(spec, "x")
    assert a == b and (info.n_members, info.n_nonmembers) == (5, 5)
    assert [i.text for i in a[:5]] != [f"m {i}" for i in range(5)]  # a sample, not the head


@pytest.mark.parametrize(
    ("rows", "spec", "message"),
    [
        ([{"txt": "a"}], {"text_field": "text"}, "no field 'text'"),
        ([{"text": ""}], {}, "empty or non-text"),
        ([{"text": "same"}], {"same_both": True}, "labelled both member and non-member"),
        ([{"text": "only one"}], {}, "at least 2 members"),
    ],
)
def test_bad_data_is_one_clear_error(tmp_path, rows, spec, message):
    m = _jsonl(tmp_path / "m.jsonl", rows)
    other = [{"text": "x"}, {"text": "y"}]
    n = m if spec.pop("same_both", False) else _jsonl(tmp_path / "n.jsonl", other)
    with pytest.raises(MIDataError, match=message):
        load_mi_items(MIDataSpec(members=m, nonmembers=n, **spec), "bad")


def test_bad_sources_and_labels(tmp_path):
    with pytest.raises(MIDataError, match="either data=SOURCE"):
        MIDataSpec(members="a.jsonl")
    with pytest.raises(MIDataError, match="no such file"):
        load_mi_items(MIDataSpec(data=str(tmp_path / "missing.jsonl")), "x")
    (tmp_path / "t.csv").write_text("text\n")
    with pytest.raises(MIDataError, match="unknown format"):
        load_mi_items(MIDataSpec(data=str(tmp_path / "t.csv")), "x")
    bad = _jsonl(tmp_path / "l.jsonl", [{"text": "a", "label": 2}, {"text": "b", "label": 0}])
    with pytest.raises(MIDataError, match="must be 0 or 1"):
        load_mi_items(MIDataSpec(data=bad), "x")
