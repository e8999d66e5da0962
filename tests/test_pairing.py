from pathlib import Path

import pytest
from conftest import camera

from mmfuse_cli.io import write_image
from mmfuse_cli.pairing import pair_folders, parse_pair_lines


def _make(folder: Path, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_image(folder / name, camera(8, 8), 8)


def test_pairs_by_stem_across_extensions_and_reports_the_rest(tmp_path):
    _make(tmp_path / "a", ["1.png", "2.png", "3.png", "dup.png", "dup.jpg"])
    _make(tmp_path / "b", ["1.jpg", "2.tif", "4.png", "dup.png"])
    (tmp_path / "a" / "notes.txt").write_text("ignored: not an image")
    result = pair_folders(tmp_path / "a", tmp_path / "b")
    assert [(p.key, p.a.name, p.b.name) for p in result.pairs] == [
        ("1", "1.png", "1.jpg"),
        ("2", "2.png", "2.tif"),
    ]
    assert [p.name for p in result.only_in_a] == ["3.png"]
    assert [p.name for p in result.only_in_b] == ["4.png"]
    assert set(result.ambiguous) == {"dup"}
    reasons = dict(result.problems())
    assert any("duplicate stem" in r for r in reasons.values())
    assert len(result.problems()) == 3


def test_recursive_keeps_relative_tree(tmp_path):
    _make(tmp_path / "a", ["x/1.png", "y/1.png"])
    _make(tmp_path / "b", ["x/1.png", "y/1.png"])
    assert pair_folders(tmp_path / "a", tmp_path / "b").pairs == []
    keys = [p.key for p in pair_folders(tmp_path / "a", tmp_path / "b", recursive=True).pairs]
    assert keys == ["x/1", "y/1"]


def test_a_reports_thumbnails_are_not_images_of_the_run(tmp_path):
    _make(tmp_path / "a", ["x/1.png", "report/thumbs/x-1-fused.jpg", "report/1.png"])
    _make(tmp_path / "b", ["x/1.png", "report/1.png"])
    result = pair_folders(tmp_path / "a", tmp_path / "b", recursive=True)
    assert [p.key for p in result.pairs] == ["report/1", "x/1"] and not result.only_in_a


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(NotADirectoryError):
        pair_folders(tmp_path / "none", tmp_path)


def test_pair_lines():
    pairs = parse_pair_lines(["# comment\n", "a/1.png\tb/1.png\n", "\n", "c/1.png\td/1.png\n"])
    assert [p.key for p in pairs] == ["1", "1_1"]
    with pytest.raises(ValueError, match="line 1"):
        parse_pair_lines(["only-one-field\n"])
