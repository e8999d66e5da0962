import json

import pytest

from mmfuse_cli.degradation.sidecar import SIDECAR_NAME, Sidecar, SidecarError, read_sidecar, write_sidecar
from mmfuse_cli.degradation.spec import Degradation


def _write(tmp_path, data):
    path = tmp_path / SIDECAR_NAME
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _valid():
    return Sidecar(Degradation(1.5, 2, 0.05), seed=4, files=["a.png"]).to_json()


def test_round_trip(tmp_path):
    write_sidecar(tmp_path, Sidecar(Degradation(1.5, 2, 0.05), seed=4, files=["b.png", "a.png"]))
    side = read_sidecar(tmp_path / SIDECAR_NAME)
    assert side.degradation == Degradation(1.5, 2, 0.05)
    assert side.seed == 4 and side.files == ["a.png", "b.png"]
    # a source stored as pixel blocks (``grid``, written by hand: `mmfuse degrade` never sets it)
    write_sidecar(tmp_path, Sidecar(Degradation(1.5, 1, 0.0, grid=2)))
    assert read_sidecar(tmp_path / SIDECAR_NAME).degradation.grid == 2


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda d: "{not json", "not valid JSON"),
        (lambda d: [1, 2], "JSON object"),
        (lambda d: {**d, "colour": "red"}, "unknown field"),
        (lambda d: {**d, "schema": "other"}, "schema"),
        (lambda d: {**d, "schema_version": 99}, "schema_version"),
        (lambda d: {**d, "degradation": {"blur": 1, "scale": 1000, "noise": 0}}, "scale"),
        (lambda d: {**d, "degradation": {"blur": 1, "scale": 2, "noise": -1}}, "noise"),
        (lambda d: {**d, "degradation": {"blur": 1, "zoom": 2}}, "unknown degradation field"),
        (lambda d: {**d, "degradation": {"blur": 1, "grid": 0}}, "pixel grid"),
        (lambda d: {**d, "files": ["../../etc/passwd"]}, "outside the folder"),
        (lambda d: {**d, "files": ["/etc/passwd"]}, "outside the folder"),
        (lambda d: {**d, "files": ["C:\\\\x.png"]}, "outside the folder"),
        (lambda d: {**d, "seed": "abc"}, "seed"),
    ],
)
def test_bad_sidecars_are_rejected_with_the_file_named(tmp_path, mutate, match):
    data = mutate(_valid())
    path = _write(tmp_path, data)
    with pytest.raises(SidecarError, match=match) as info:
        read_sidecar(path)
    assert str(path) in str(info.value)
