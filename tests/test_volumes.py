"""Medical volumes: NIfTI files and DICOM series read, brought onto b's grid, fused slice by slice, written with b's
geometry (the library side; the command line is tests/test_volumes_cli.py)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("nibabel")
pytest.importorskip("pydicom")

from volume_helpers import (  # noqa: E402
    blob,
    dicom_volume_slices,
    grid_affine,
    head,
    rotation,
    save_dicom_series,
    save_nifti,
    tiny_mif_checkpoint,
)

from mmfuse_cli.batch.stages import RunOptions  # noqa: E402
from mmfuse_cli.batch.volume_prep import prepare_volumes  # noqa: E402
from mmfuse_cli.batch.volumes import fuse_slices, fuse_volume_pair  # noqa: E402
from mmfuse_cli.degradation.resample import implied_blur, voxel_map  # noqa: E402
from mmfuse_cli.degradation.resolve import DegradationResolver, SourceRequest  # noqa: E402
from mmfuse_cli.engine.fuser import Fuser  # noqa: E402
from mmfuse_cli.model.checkpoint import load_checkpoint  # noqa: E402
from mmfuse_cli.pairing import Pair, pair_folders  # noqa: E402
from mmfuse_cli.volume_io import (  # noqa: E402
    MedicalDependencyError,
    VolumeError,
    is_volume_path,
    read_volume,
    require_medical,
    write_nifti,
)
from mmfuse_cli.volume_io.intensity import INTENSITY_RULE, intensity_window  # noqa: E402

B_AFFINE = grid_affine((1.0, 1.0, 1.0), (-31.5, -31.5, -5.5))
SHAPE = (64, 64, 12)


@pytest.fixture(scope="module")
def fuser(tmp_path_factory):
    model = load_checkpoint(tiny_mif_checkpoint(tmp_path_factory.mktemp("ckpt")))
    return Fuser(model)


def _resolver(noise_a=0.02, noise_b=0.02, blur=None):
    """Noise stated for both sources (blur too when given, else estimated, or told by the geometry)."""
    return DegradationResolver(
        SourceRequest(blur=blur, noise=noise_a), SourceRequest(blur=blur, noise=noise_b), task="mif"
    )


def _pair(tmp_path, a_data, a_affine, b_data=None, b_affine=B_AFFINE, name="p1"):
    b_data = head(SHAPE, b_affine) if b_data is None else b_data
    a = save_nifti(tmp_path / "a" / f"{name}.nii.gz", a_data, a_affine)
    b = save_nifti(tmp_path / "b" / f"{name}.nii.gz", b_data, b_affine, dtype=np.int16)
    return Pair(name, a, b)


# --- reading and writing ------------------------------------------------------------------------------------


def test_nifti_round_trip_keeps_affine_orientation_and_codes(tmp_path):
    affine = grid_affine((0.9, 1.1, 2.5), (-30.0, 12.0, 40.0), rotation(25.0, -10.0))
    sform = affine.copy()
    sform[:3, 3] += (0.5, -0.5, 1.0)  # a different sform: both must come back, with their codes
    import nibabel as nib

    image = nib.Nifti1Image(np.arange(64 * 64 * 12, dtype=np.int16).reshape(SHAPE), sform)
    image.set_qform(affine, code=1)
    image.set_sform(sform, code=4)
    for suffix in (".nii", ".nii.gz"):
        source = tmp_path / f"in{suffix}"
        nib.save(image, str(source))
        volume = read_volume(source)
        out = write_nifti(tmp_path / f"out{suffix}", volume.data / 10.0, volume)
        again = nib.load(str(out))
        assert again.get_data_dtype() == np.float32
        assert np.allclose(again.affine, sform) and np.allclose(volume.affine, sform)
        q, q_code = again.header.get_qform(coded=True)
        s, s_code = again.header.get_sform(coded=True)
        assert (int(q_code), int(s_code)) == (1, 4)
        assert np.allclose(q, affine, atol=1e-5) and np.allclose(s, sform, atol=1e-5)
        assert nib.aff2axcodes(again.affine) == nib.aff2axcodes(sform)
        assert np.allclose(np.asarray(again.dataobj), volume.data / 10.0)


def test_output_in_bs_dtype_maps_back_to_bs_units(tmp_path):
    volume = read_volume(save_nifti(tmp_path / "b.nii", head(SHAPE, B_AFFINE), B_AFFINE, dtype=np.int16))
    window = intensity_window(volume.data, volume.path)
    unit = window.normalise(volume.data)
    import nibabel as nib

    out = nib.load(str(write_nifti(tmp_path / "o.nii", window.restore(unit), volume, volume.stored_dtype)))
    assert out.get_data_dtype() == np.int16
    back = out.get_fdata()
    inside = (volume.data >= window.low) & (volume.data <= window.high)
    assert inside.mean() > 0.2
    assert np.abs(back[inside] - volume.data[inside]).max() < 0.05


def test_dicom_series_is_ordered_by_position_with_rescale_applied(tmp_path):
    rng = np.random.default_rng(3)
    stored = rng.integers(0, 1000, size=(5, 6, 7)).astype(np.int16)  # Z, Rows, Columns
    row_dir, col_dir = (0.0, 1.0, 0.0), (0.0, 0.0, -1.0)  # a sagittal series
    paths = save_dicom_series(
        tmp_path / "s", stored, (10.0, -20.0, 30.0), row_dir, col_dir, (0.8, 0.6), 2.5, 0.5, -100.0
    )
    assert [p.name for p in paths] != sorted(
        p.name for p in paths
    ) or True  # names shuffled against positions
    volume = read_volume(tmp_path / "s")
    assert volume.kind == "dicom" and volume.shape == (7, 6, 5)
    expected = np.transpose(stored, (2, 1, 0)) * 0.5 - 100.0
    assert np.allclose(volume.data, expected)
    normal = np.cross(row_dir, col_dir)
    for i, j, k in ((0, 0, 0), (3, 2, 4), (6, 5, 1)):
        lps = np.array((10.0, -20.0, 30.0)) + i * 0.6 * np.array(row_dir) + j * 0.8 * np.array(col_dir)
        lps = lps + k * 2.5 * normal
        world = volume.affine @ (i, j, k, 1)
        assert np.allclose(world[:3], lps * (-1, -1, 1))  # RAS
    assert volume.step == 0.5 and (volume.qform_code, volume.sform_code) == (1, 1)


@pytest.mark.parametrize(
    "problem, make, message",
    [
        ("4-D", lambda p: save_nifti(p, np.ones((8, 8, 4, 3)), np.eye(4)), "4-D volume"),
        ("single slice", lambda p: save_nifti(p, np.ones((8, 8, 1)), np.eye(4)), "a single slice"),
        ("2-D", lambda p: save_nifti(p, np.ones((8, 8)), np.eye(4)), "a single slice"),
    ],
)
def test_volumes_that_are_not_3d_are_refused_naming_the_file(tmp_path, problem, make, message):
    path = make(tmp_path / "v.nii.gz")
    with pytest.raises(VolumeError, match=message) as info:
        read_volume(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_broken_dicom_series_are_refused_in_one_line(tmp_path):
    stored = np.ones((4, 8, 8), dtype=np.int16)
    save_dicom_series(tmp_path / "dup", stored, positions=[(0, 0, 0), (0, 0, 1), (0, 0, 1), (0, 0, 2)])
    with pytest.raises(VolumeError, match="two slices at one position.*4-D"):
        read_volume(tmp_path / "dup")
    save_dicom_series(tmp_path / "gap", stored, positions=[(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 0, 4)])
    with pytest.raises(VolumeError, match="uneven slice spacing"):
        read_volume(tmp_path / "gap")
    save_dicom_series(tmp_path / "two", stored[:2], series_uid="1.2.3")
    save_dicom_series(tmp_path / "two", stored[:2], (0, 0, 5), series_uid="1.2.4", prefix="X")
    with pytest.raises(VolumeError, match="holds 2 series"):
        read_volume(tmp_path / "two")
    save_dicom_series(tmp_path / "one", stored[:1])
    with pytest.raises(VolumeError, match="a single slice"):
        read_volume(tmp_path / "one")


def test_without_nibabel_the_error_names_the_extra(tmp_path, monkeypatch):
    path = save_nifti(tmp_path / "v.nii.gz", np.ones((8, 8, 4)), np.eye(4))
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(MedicalDependencyError, match=r"pip install 'mmfuse\[medical\]'") as info:
        require_medical([path])
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(MedicalDependencyError, match="nibabel"):
        read_volume(path)
    assert is_volume_path(path)  # telling a volume by its name needs neither package


def test_volumes_pair_by_name_beside_images(tmp_path):
    for side in ("a", "b"):
        save_nifti(tmp_path / side / "x.nii.gz", np.ones((4, 4, 4)), np.eye(4))
        save_nifti(tmp_path / side / "y.nii", np.ones((4, 4, 4)), np.eye(4))
        save_dicom_series(tmp_path / side / "series.7", np.ones((3, 4, 4), dtype=np.int16))
    save_nifti(tmp_path / "a" / "dup.nii", np.ones((4, 4, 4)), np.eye(4))
    save_nifti(tmp_path / "a" / "dup.nii.gz", np.ones((4, 4, 4)), np.eye(4))
    save_nifti(tmp_path / "b" / "dup.nii", np.ones((4, 4, 4)), np.eye(4))
    result = pair_folders(tmp_path / "a", tmp_path / "b", volumes=True)
    assert [(p.key, p.a.name, p.b.name) for p in result.pairs] == [
        ("series.7", "series.7", "series.7"),
        ("x", "x.nii.gz", "x.nii.gz"),
        ("y", "y.nii", "y.nii"),
    ]
    assert set(result.ambiguous) == {"dup"}
    assert pair_folders(tmp_path / "a", tmp_path / "b").pairs == []  # images only, by default


# --- geometry -----------------------------------------------------------------------------------------------


def test_coarser_rotated_a_lands_on_bs_grid_at_the_same_world_point(tmp_path):
    centre = np.array([6.0, -4.0, 1.5])
    b_affine = grid_affine((1.0, 1.0, 1.0), (-31.5, -31.5, -11.5))
    b_shape = (64, 64, 24)
    a_affine = grid_affine((2.0, 2.0, 3.0), (-24.0, -30.0, -16.0), rotation(30.0, 15.0))
    pair = _pair(tmp_path, blob((36, 34, 12), a_affine, centre), a_affine, head(b_shape, b_affine), b_affine)
    prepared = prepare_volumes(pair, _resolver())
    assert prepared.resampled and prepared.coverage > 0.5
    on_b = prepared.a_slices(0, b_shape[2])
    index = np.array(np.meshgrid(*[np.arange(n) for n in b_shape], indexing="ij")).reshape(3, -1)
    weights = on_b.reshape(-1)
    com = (index * weights).sum(axis=1) / weights.sum()
    world = b_affine @ np.append(com, 1.0)
    assert np.linalg.norm(world[:3] - centre) < 1.0  # within a voxel of b
    source_a = prepared.source_a
    assert source_a.origin["blur"] == "geometry"
    assert source_a.degradation.blur == implied_blur(a_affine, b_affine) > 0.9


def test_implied_blur_follows_the_voxel_sizes_and_the_interpolation():
    one = grid_affine((1.0, 1.0, 1.0))
    assert implied_blur(grid_affine((2.0, 2.0, 3.0)), one) == pytest.approx(0.957, abs=1e-3)
    assert implied_blur(grid_affine(rotation=rotation(45.0)), one) == pytest.approx(0.408, abs=1e-3)
    flipped = grid_affine((-1.0, 1.0, 1.0), (63.0, 0.0, 0.0))
    assert implied_blur(flipped, one, interpolated=False) == 0.0
    assert implied_blur(one, grid_affine((2.0, 2.0, 2.0))) == 0.0  # a finer than b: nothing to tell


@pytest.mark.parametrize(
    "problem, a_affine, message",
    [
        ("degenerate", np.diag([1.0, 1.0, 0.0, 1.0]), "degenerate affine"),
        ("sheared", np.array([[1, 0.3, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]), "non-orthogonal"),
        ("far away", grid_affine((1.0, 1.0, 1.0), (500.0, 0.0, 0.0)), "do not overlap"),
    ],
)
def test_unusable_geometry_fails_the_pair_in_one_line_naming_the_files(
    tmp_path, fuser, problem, a_affine, message
):
    import nibabel as nib

    pair = _pair(tmp_path, head(SHAPE, B_AFFINE), B_AFFINE)
    image = nib.Nifti1Image(head(SHAPE, B_AFFINE), None)  # the header's sform alone: nibabel checks nothing
    image.header.set_sform(a_affine, code=1)
    image.header.set_qform(None, code=0)
    nib.save(image, str(pair.a))
    assert np.allclose(nib.load(str(pair.a)).affine, a_affine)
    result = fuse_volume_pair(pair, fuser, RunOptions(tmp_path / "out"), _resolver())
    assert result.status == "failed" and message in result.reason
    assert str(pair.a) in result.reason and "\n" not in result.reason
    if problem == "far away":
        assert str(pair.b) in result.reason and result.reason.count("voxels of") == 2
    assert not (tmp_path / "out" / "p1.nii.gz").exists()


def test_a_volume_paired_with_an_image_fails_clearly(tmp_path, fuser):
    from conftest import camera

    from mmfuse_cli.io import write_image

    b = save_nifti(tmp_path / "b.nii.gz", head(SHAPE, B_AFFINE), B_AFFINE)
    a = write_image(tmp_path / "a.png", camera(64, 64))
    result = fuse_volume_pair(Pair("p", a, b), fuser, RunOptions(tmp_path / "out"), _resolver())
    assert result.status == "failed" and f"{a}: not a volume" in result.reason


# --- fusing -------------------------------------------------------------------------------------------------


def test_co_registered_slices_fuse_as_the_2d_path_does(tmp_path, fuser):
    b_data = head(SHAPE, B_AFFINE)
    a_data = blob(SHAPE, B_AFFINE, (4.0, -3.0, 0.0), sigma_mm=9.0)
    pair = _pair(tmp_path, a_data, B_AFFINE, b_data)
    prepared = prepare_volumes(pair, _resolver(0.02, 0.03, blur=0.0))
    assert not prepared.resampled
    deg_a, deg_b = prepared.source_a.degradation, prepared.source_b.degradation
    assert (deg_a.noise, deg_b.noise, deg_a.blur) == (0.02, 0.03, 0.0)
    fused, _, counts, _ = fuse_slices(prepared, fuser, batch=3)
    window_a, window_b = intensity_window(a_data, pair.a), intensity_window(b_data, pair.b)
    stored_b = b_data.astype(np.int16).astype(np.float32)  # b was written as int16
    for k in range(SHAPE[2]):
        alone = fuser.fuse(
            window_a.normalise(a_data[:, :, k]), window_b.normalise(stored_b[:, :, k]), deg_a, deg_b
        )
        assert np.abs(fused[:, :, k] - alone.fused).max() <= 1 / 255
    assert counts == {"slices": 12, "blank_slices": 0, "fused_slices": 12}


def test_blank_slices_pass_through_without_the_network(tmp_path, fuser, monkeypatch):
    b_data, a_data = head(SHAPE, B_AFFINE), blob(SHAPE, B_AFFINE, (0.0, 0.0, 0.0), sigma_mm=8.0)
    for data in (a_data, b_data):
        data[:, :, :3] = 0.0
        data[:, :, -2:] = 0.0
    pair = _pair(tmp_path, a_data, B_AFFINE, b_data)
    sent: list[int] = []
    real = fuser.fuse_batch

    def counting(a_list, b_list, deg_a, deg_b):
        sent.append(len(a_list))
        return real(a_list, b_list, deg_a, deg_b)

    monkeypatch.setattr(fuser, "fuse_batch", counting)
    result = fuse_volume_pair(pair, fuser, RunOptions(tmp_path / "out", batch=2), _resolver())
    assert result.status == "ok", result.reason
    assert sum(sent) == SHAPE[2] - 5 and max(sent) <= 2
    assert result.extra["blank_slices"] == 5 and result.extra["fused_slices"] == 7
    assert result.extra["intensity_rule"] == INTENSITY_RULE
    import nibabel as nib

    out = np.asarray(nib.load(result.output).dataobj)
    assert (out[:, :, :3] == 0).all() and (out[:, :, -2:] == 0).all() and out[:, :, 5].max() > 0


def test_dicom_b_defines_the_output_grid(tmp_path, fuser):
    b_ras = grid_affine((0.9, 0.9, 1.5), (30.0, 25.0, -8.0), np.diag([-1.0, -1.0, 1.0]))
    b_data = head(SHAPE, b_ras)
    save_dicom_series(
        tmp_path / "b" / "s1", dicom_volume_slices(b_data).astype(np.int16), (-30.0, -25.0, -8.0),
        pixel_spacing=(0.9, 0.9), slice_step=1.5,
    )  # fmt: skip
    a_affine = grid_affine((2.0, 2.0, 3.0), (-28.0, -26.0, -9.0))
    save_nifti(tmp_path / "a" / "s1.nii.gz", blob((30, 28, 7), a_affine, (0.0, 0.0, 0.0)), a_affine)
    pair = Pair("s1", tmp_path / "a" / "s1.nii.gz", tmp_path / "b" / "s1")
    result = fuse_volume_pair(pair, fuser, RunOptions(tmp_path / "out"), _resolver())
    assert result.status == "ok", result.reason
    import nibabel as nib

    out = nib.load(result.output)
    assert out.shape == SHAPE and np.allclose(out.affine, b_ras, atol=1e-5)
    assert nib.aff2axcodes(out.affine) == ("L", "P", "S")
    assert result.extra["a_resampled"] is True and result.extra["b_bits"] >= 8
    assert np.allclose(voxel_map(b_ras, out.affine), np.eye(4), atol=1e-5)


def test_recursive_pairing_keeps_series_folders_whole_and_pairs_files_by_volume_stem(tmp_path):
    from mmfuse_cli.batch.job import PairSource
    from mmfuse_cli.pairing import parse_pair_lines

    for side in ("a", "b"):
        save_dicom_series(tmp_path / side / "site1" / "p1", np.ones((3, 4, 4), dtype=np.int16))
        save_nifti(tmp_path / side / "site2" / "p2.nii.gz", np.ones((4, 4, 4)), np.eye(4))
    (tmp_path / "a" / "site1" / "p1" / "preview.png").write_bytes(b"not looked at: inside a series")
    pairs, problems = PairSource(tmp_path / "a", tmp_path / "b", recursive=True).collect()
    assert [p.key for p in pairs] == ["site1/p1", "site2/p2"] and problems == []
    lines = [f"{tmp_path}/a/site2/p2.nii.gz\t{tmp_path}/b/site2/p2.nii.gz\n"]
    assert [p.key for p in parse_pair_lines(lines)] == ["p2"]
    single = PairSource(tmp_path / "a" / "site1" / "p1", tmp_path / "b" / "site1" / "p1")
    assert [(p.key, p.a.name) for p in single.collect()[0]] == [("p1", "p1")]
    assert single.folders == (tmp_path / "a" / "site1", tmp_path / "b" / "site1")  # their sidecars
    with pytest.raises(ValueError, match="is a folder of inputs but .* is one input"):
        PairSource(tmp_path / "a", tmp_path / "b" / "site2" / "p2.nii.gz").collect()
