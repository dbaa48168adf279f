"""The synthetic products: layouts, labels consistent with the images, determinism, errors."""
import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.errors import UserError
from benchmarks.synth.hand import GESTURES
from benchmarks.synth.preview import preview
from benchmarks.synth.products import generate
from benchmarks.synth.camera import angle_between, direction_from_viewpoint
from benchmarks.synth.preview import CAPTION, COLUMNS
from benchmarks.synth.products import generator, lab_chunks, wild_chunks
from benchmarks.synth.scene import TRIPLET_STEP_DEG, render_scenes

RES = 64
SEED = 3


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def load(path: Path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    return generate("lab", tmp_path_factory.mktemp("lab"), 12, RES, SEED, eval_n=4)


@pytest.fixture(scope="module")
def wild(tmp_path_factory) -> Path:
    return generate("wild", tmp_path_factory.mktemp("wild"), 8, RES, SEED)


@pytest.fixture(scope="module")
def triplets(tmp_path_factory) -> Path:
    return generate("triplets", tmp_path_factory.mktemp("triplets"), 8, 48, SEED)


def test_lab_has_the_freihand_layout(lab):
    for split, n in (("training", 12), ("evaluation", 4)):
        images = sorted((lab / split / "rgb").iterdir())
        assert [p.name for p in images] == [f"{i:08d}.jpg" for i in range(n)]
        assert Image.open(images[0]).size == (RES, RES)
        xyz, K = load(lab / f"{split}_xyz.json"), load(lab / f"{split}_K.json")
        scale, meta = load(lab / f"{split}_scale.json"), load(lab / f"{split}_meta.json")
        assert np.array(xyz).shape == (n, 21, 3) and np.array(K).shape == (n, 3, 3)
        assert len(scale) == len(meta) == n
        assert {m["gesture"] for m in meta} <= set(GESTURES)
        assert all(-180 <= m["viewpoint"][0] <= 180 and -90 <= m["viewpoint"][1] <= 90
                   for m in meta)
    assert load(lab / "synth.json") == {"kind": "lab", "n": 12, "res": RES, "seed": SEED,
                                        "version": 3, "eval_n": 4, "world": "capture"}


def test_lab_scale_is_the_middle_proximal_bone(lab):
    xyz = np.array(load(lab / "training_xyz.json"))
    scale = np.array(load(lab / "training_scale.json"))
    assert np.allclose(scale, np.linalg.norm(xyz[:, 9] - xyz[:, 10], axis=-1), atol=1e-6)
    assert ((scale > 0.02) & (scale < 0.035)).all()


def test_lab_joints_project_inside_the_image_onto_hand_pixels(lab):
    xyz = torch.tensor(load(lab / "training_xyz.json"))
    K = torch.tensor(load(lab / "training_K.json"))
    uvw = xyz @ K.transpose(1, 2)
    uv = uvw[..., :2] / uvw[..., 2:]
    assert (xyz[..., 2] > 0).all()
    assert ((uv >= 0) & (uv < RES)).all()
    # the renderer's hand mask for the same scenes covers the pixel of every joint
    (start, sc, out), = list(lab_chunks("training", 12, RES, SEED))
    assert torch.allclose(out.xyz, xyz, atol=1e-6)
    cols, rows = uv[..., 0].long(), uv[..., 1].long()
    on_hand = out.mask[torch.arange(12)[:, None], rows, cols]
    assert on_hand.all()
    # and the images on disk are those renderings
    for i in (0, 11):
        disk = torch.from_numpy(np.array(Image.open(lab / "training" / "rgb" / f"{i:08d}.jpg")))
        assert (disk.permute(2, 0, 1).float() - out.images[i].float()).abs().mean() < 4.0


def test_hands_fill_most_of_a_lab_crop(lab):
    xyz = torch.tensor(load(lab / "training_xyz.json"))
    K = torch.tensor(load(lab / "training_K.json"))
    uvw = xyz @ K.transpose(1, 2)
    uv = uvw[..., :2] / uvw[..., 2:]
    size = (uv.amax(1) - uv.amin(1)).amax(-1) / RES
    centre = 0.5 * (uv.amax(1) + uv.amin(1)) / RES
    assert ((size > 0.25) & (size <= 0.9)).all() and size.mean() > 0.5
    assert ((centre - 0.5).abs() < 0.045).all()


def test_same_seed_same_bytes_other_seed_other_bytes(lab, tmp_path):
    again = generate("lab", tmp_path / "again", 12, RES, SEED, eval_n=4)
    assert digests(again) == digests(lab)
    other = digests(generate("lab", tmp_path / "other", 12, RES, SEED + 1, eval_n=4))
    assert not [k for k, v in digests(lab).items() if other.get(k) == v]


def test_a_smaller_set_is_a_prefix_of_a_larger_one(lab, tmp_path):
    small = generate("lab", tmp_path / "small", 5, RES, SEED, eval_n=4)
    big = digests(lab)
    for name, digest in digests(small).items():
        if name.startswith("training/rgb/") or name.startswith("evaluation"):
            assert big[name] == digest, name
    xyz_small = load(small / "training_xyz.json")
    assert xyz_small == load(lab / "training_xyz.json")[:5]


def test_wild_uv_are_pixel_coordinates_of_the_drawn_hand(wild):
    uv = torch.tensor(load(wild / "wild_uv.json"))
    meta = load(wild / "wild_meta.json")
    assert uv.shape == (8, 21, 2) and len(meta) == 8
    assert ((uv >= 0) & (uv < RES)).all()
    (start, sc, out), = list(wild_chunks(8, RES, SEED))
    assert torch.allclose(out.uv, uv, atol=1e-3)
    # the 3D labels only synthetic3d reads project onto the same keypoints
    xyz, K = torch.tensor(load(wild / "wild_xyz.json")), torch.tensor(load(wild / "wild_K.json"))
    proj = xyz @ K.transpose(1, 2)
    assert torch.allclose(proj[..., :2] / proj[..., 2:], uv, atol=0.02)
    # without the distractors that may hide them, every joint lands on a hand pixel
    clear = replace(sc, distractors=replace(sc.distractors, ra=sc.distractors.ra * 0,
                                            rb=sc.distractors.rb * 0))
    mask = render_scenes(clear, RES, generator(0, "test", 0)).mask
    assert mask[torch.arange(8)[:, None], uv[..., 1].long(), uv[..., 0].long()].all()
    # hands are placed anywhere and at several sizes, unlike the lab crops
    size = (uv.amax(1) - uv.amin(1)).amax(-1) / RES
    assert size.min() < 0.5


def test_triplets_are_symmetric_steps_with_labels(triplets):
    records = load(triplets / "triplets.json")
    assert load(triplets / "gestures.json") == list(GESTURES)
    assert len(records) == 8
    names = sorted(p.name for p in (triplets / "rgb").iterdir())
    assert names == sorted(f"{i:08d}_{s}.jpg" for i in range(8) for s in "lcr")
    views = direction_from_viewpoint(torch.tensor([r["viewpoint"] for r in records],
                                                  dtype=torch.float64))
    left, centre, right = views.unbind(1)
    step_l, step_r = angle_between(left, centre), angle_between(centre, right)
    assert torch.allclose(step_l, step_r, atol=math.radians(0.01))
    lo, hi = (math.radians(d) for d in TRIPLET_STEP_DEG)
    assert ((step_l > lo - 1e-3) & (step_l < hi + 1e-3)).all()
    mid = (left + right) / (left + right).norm(dim=-1, keepdim=True)
    assert torch.allclose(mid, centre, atol=1e-4)                        # one great circle
    for r in records:
        assert GESTURES[r["gesture"]] == r["gesture_name"]
    # a held-out quarter of the hands, whole hands on one side of the split
    split = {}
    for r in records:
        assert split.setdefault(r["hand"], r["split"]) == r["split"]
    assert sorted(split.values()) == ["test", "train"]


def test_bad_requests_are_user_errors_and_write_nothing(tmp_path):
    for kind, n, res, eval_n in (("studio", 8, 64, None), ("lab", 0, 64, None),
                                 ("wild", 8, 16, None), ("lab", 8, 64, 0)):
        with pytest.raises(UserError):
            generate(kind, tmp_path / "out", n, res, SEED, eval_n=eval_n)
        assert not (tmp_path / "out").exists()


def test_preview_is_a_deterministic_grid(tmp_path):
    a = preview(tmp_path / "a.png", res=48, seed=1, n=7)
    b = preview(tmp_path / "b.png", res=48, seed=1, n=7)
    assert a.read_bytes() == b.read_bytes()
    assert Image.open(a).size == (COLUMNS * 2 * 48, 2 * (48 + CAPTION))
    with pytest.raises(UserError):
        preview(tmp_path / "c.png", res=48, n=0)


def _roll_deg(R: torch.Tensor) -> torch.Tensor:
    """Angle in the image between "up" and the hand's distal axis (degrees)."""
    d = R[:, :, 1]                        # the hand's y axis in the camera frame
    return torch.rad2deg(torch.atan2(d[:, 0], -d[:, 1]))


def test_capture_world_keeps_cameras_near_the_palm_equator_and_fingers_up():
    """capture: elevation within +-50 degrees of the palm's equator, any azimuth, roll
    within +-45 degrees; sphere reaches beyond both."""
    from benchmarks.synth.scene import LAB, VIEWPOINTS, sample_scenes

    cap = sample_scenes(512, LAB, 64, torch.Generator().manual_seed(1), world="capture")
    sph = sample_scenes(512, LAB, 64, torch.Generator().manual_seed(1), world="sphere")
    limit = VIEWPOINTS["capture"]
    v = -cap.R[:, 2]                                            # optical axis, hand frame
    el = torch.rad2deg(torch.asin(v[:, 1]))
    az = torch.rad2deg(torch.atan2(v[:, 0], v[:, 2]))
    assert el.abs().max() <= limit.elevation_deg + 1e-3
    assert az.min() < -150 and az.max() > 150                 # palm, back and both sides
    assert _roll_deg(cap.R).abs().max() <= limit.roll_deg + 1e-3
    assert sph.viewpoints()[:, 1].abs().max() > 60 and _roll_deg(sph.R).abs().max() > 120
    with pytest.raises(UserError, match="unknown synthetic world"):
        sample_scenes(2, LAB, 64, torch.Generator(), world="moon")


def test_world_is_part_of_the_lab_product(tmp_path):
    from benchmarks.data.prepare import synthetic

    a = synthetic("lab", tmp_path, n=4, res=32, seed=0, eval_n=2, world="capture")
    b = synthetic("lab", tmp_path, n=4, res=32, seed=0, eval_n=2, world="sphere")
    assert a != b and load(b / "synth.json")["world"] == "sphere"
    assert load(a / "training_xyz.json") != load(b / "training_xyz.json")
