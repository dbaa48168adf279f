"""FreiHAND loader: annotations as written, K and uv consistent with the resized image,
versions mapped to their labels, and seeded id splits that keep versions together."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import default_collate

from benchmarks.data.freihand import FreiHAND, project, split_ids, split_sizes
from data_trees import find_dot, freihand_tree

FRAME = 40


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("freihand")
    return root, freihand_tree(root, n=3, versions=2, frame=FRAME, meta=True)


def test_annotations_equal_the_json_and_K_is_rescaled_to_the_output_size(tree):
    root, gt = tree
    res = 24
    data = FreiHAND(root, "train", res)
    assert len(data) == 6 and data.n_unique == 3 and data.n_versions == 2
    for i in range(len(data)):
        item = data[i]
        idx = int(item["label_id"])
        np.testing.assert_array_equal(item["xyz"].numpy(), gt["xyz"][idx].astype(np.float32))
        assert item["scale"].item() == np.float32(gt["scale"][idx])
        K = np.diag([res / FRAME, res / FRAME, 1.0]) @ gt["K"][idx]
        np.testing.assert_allclose(item["K"].numpy(), K, rtol=1e-6)
        assert item["image"].shape == (3, res, res) and item["image"].dtype == torch.uint8


@pytest.mark.parametrize("res", [24, 40, 80])
def test_uv_is_the_projection_with_the_resized_K_and_lies_on_the_content(tree, res):
    root, _ = tree
    for item in FreiHAND(root, "train", res):
        K, xyz = item["K"].double().numpy(), item["xyz"].double().numpy()
        np.testing.assert_allclose(item["uv"].numpy(), project(K, xyz), atol=1e-4)
        # the frame has a dot on joint 0: it must sit at uv[0] in the resized image
        np.testing.assert_allclose(find_dot(item["image"].numpy()), item["uv"][0].numpy(),
                                   atol=0.6 * res / FRAME + 0.2)


def test_image_id_idx_plus_n_times_k_is_version_k_of_label_idx(tree):
    root, gt = tree
    data = FreiHAND(root, "train", FRAME)
    assert data.image_ids.tolist() == list(range(6))
    for item in data:
        image_id, idx = int(item["image_id"]), int(item["label_id"])
        assert idx == image_id % 3
        k = image_id // 3
        background = float(np.median(item["image"].numpy()))
        assert abs(background - 40 * k) <= 3                      # the version's own frame
        np.testing.assert_array_equal(item["xyz"].numpy(), gt["xyz"][idx].astype(np.float32))


def test_ids_and_versions_select_whole_ids(tree):
    root, _ = tree
    assert FreiHAND(root, ids=[2, 0]).image_ids.tolist() == [0, 2, 3, 5]
    assert FreiHAND(root, versions=[1]).image_ids.tolist() == [3, 4, 5]
    assert FreiHAND(root, ids=[1], versions=[0]).image_ids.tolist() == [1]


def test_eval_split_reads_the_evaluation_files(tree):
    root, gt = tree
    data = FreiHAND(root, "eval", 32)
    assert len(data) == 2 and data.n_versions == 1
    for i, item in enumerate(data):
        np.testing.assert_array_equal(item["xyz"].numpy(), gt["eval_xyz"][i].astype(np.float32))
        assert item["scale"].item() == np.float32(gt["eval_scale"][i])


def test_preload_gives_byte_identical_items(tree):
    root, _ = tree
    lazy, pre = FreiHAND(root, res=24), FreiHAND(root, res=24, preload=True)
    assert pre.preloaded and not lazy.preloaded
    for a, b in zip(lazy, pre):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pretraining_crop_keeps_uv_on_the_content_and_K_consistent(tree):
    root, _ = tree
    res = 32
    data = FreiHAND(root, res=res, crop_margin=1.5)
    for item in data:
        uv = item["uv"].numpy()
        np.testing.assert_allclose(uv, project(item["K"].double().numpy(),
                                               item["xyz"].double().numpy()), atol=1e-4)
        # the crop rule: keypoint box centred, its longer side res / margin
        np.testing.assert_allclose((uv.min(0) + uv.max(0)) / 2, [res / 2, res / 2], atol=1.0)
        assert abs((uv.max(0) - uv.min(0)).max() - res / 1.5) < 1.0
        np.testing.assert_allclose(find_dot(item["image"].numpy()), uv[0], atol=0.6)


def test_meta_side_file_is_loaded(tree):
    root, _ = tree
    assert FreiHAND(root).meta == [{"gesture": "open", "viewpoint": [0.0, 0.0]}] * 3


def test_items_collate_into_a_batch(tree):
    root, _ = tree
    batch = default_collate([item for item in FreiHAND(root, res=16)])
    assert batch["image"].shape == (6, 3, 16, 16) and batch["uv"].shape == (6, 21, 2)
    assert batch["K"].shape == (6, 3, 3) and batch["scale"].shape == (6,)
    assert batch["label_id"].dtype == torch.int64


@settings(max_examples=100, deadline=None)
@given(n=st.integers(2, 300), val=st.sampled_from([0.0, 0.1, 0.25, 0.5]),
       lf=st.sampled_from([0.01, 0.1, 0.5, 1.0]), seed=st.integers(0, 2**31))
def test_split_ids_is_seeded_disjoint_and_nested_in_label_fraction(n, val, lf, seed):
    train, held = split_ids(n, val, lf, seed)
    assert (train, held) == split_ids(n, val, lf, seed)
    assert not set(train) & set(held)
    assert len(held) == (max(1, round(val * n)) if val else 0)
    assert len(train) == max(1, round(lf * (n - len(held))))
    assert split_sizes(n, val, lf) == (len(train), len(held))   # what plans count, unopened
    full, held_full = split_ids(n, val, 1.0, seed)
    assert held_full == held                                # validation ignores label_fraction
    assert set(train) <= set(full) and set(full) | set(held) == set(range(n))


def test_split_ids_depends_on_the_seed():
    assert split_ids(1000, 0.1, 0.5, 0) != split_ids(1000, 0.1, 0.5, 1)


def test_versions_never_leak_across_train_and_val(tmp_path):
    freihand_tree(tmp_path, n=8, versions=3, frame=16, n_eval=1)
    train_ids, val_ids = split_ids(8, 0.25, 0.5, seed=3)
    train, val = FreiHAND(tmp_path, ids=train_ids, res=8), FreiHAND(tmp_path, ids=val_ids, res=8)
    train_labels = {int(i) % 8 for i in train.image_ids}
    val_labels = {int(i) % 8 for i in val.image_ids}
    assert train_labels == set(train_ids) and val_labels == set(val_ids)
    assert not train_labels & val_labels
    assert len(train) == 3 * len(train_ids)                 # every version of every chosen id


# -- the image count must match the versions the set records (stale images are refused) --

def _digests(root) -> dict[str, str]:
    import hashlib
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _refused_in_one_line(call) -> str:
    from benchmarks.errors import UserError
    with pytest.raises(UserError) as err:
        call()
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.fixture(scope="module")
def stale_synthetic(tmp_path_factory):
    """What an in-place ``bench data synth --n 4`` over a 16-id lab set used to leave: the
    4-id labels and synth.json over the 16 training images of the old set."""
    import shutil

    from benchmarks.synth.products import generate

    base = tmp_path_factory.mktemp("stale")
    root = generate("lab", base / "set", 16, 32, 0, eval_n=2)
    small = generate("lab", base / "small", 4, 32, 0, eval_n=2)
    shutil.copytree(small, root, dirs_exist_ok=True)
    return root


def test_a_generated_lab_set_reads_as_one_version_per_id(tmp_path):
    from benchmarks.synth.products import generate

    root = generate("lab", tmp_path / "lab", 5, 32, 0, eval_n=3)
    train, test = FreiHAND(root, "train", 32), FreiHAND(root, "eval", 32)
    assert (train.n_unique, train.n_versions, len(train)) == (5, 1, 5)
    assert (test.n_unique, test.n_versions, len(test)) == (3, 1, 3)


def test_stale_images_of_an_older_synthetic_set_are_refused_naming_both_counts(stale_synthetic):
    root = stale_synthetic
    before = _digests(root)
    assert len(list((root / "training" / "rgb").iterdir())) == 16      # 4 ids x 4 "versions"
    message = _refused_in_one_line(lambda: FreiHAND(root, "train", 32))
    assert message == (f"{root / 'training' / 'rgb'}: holds 16 images but synth.json (a synthetic "
                       f"lab set: 1 version per id) needs 4 ids in training_xyz.json x 1 version "
                       f"= 4 images")
    assert _digests(root) == before


def test_labels_that_disagree_with_synth_json_are_refused(tmp_path):
    import json

    from benchmarks.synth.products import generate

    root = generate("lab", tmp_path / "lab", 4, 32, 0, eval_n=2)
    info = json.loads((root / "synth.json").read_text())
    (root / "synth.json").write_text(json.dumps(info | {"n": 16, "eval_n": 3}))
    before = _digests(root)
    for split, prefix, key, want, n in (("train", "training", "n", 16, 4),
                                        ("eval", "evaluation", "eval_n", 3, 2)):
        message = _refused_in_one_line(lambda: FreiHAND(root, split, 32))
        assert message == (f"{root / f'{prefix}_xyz.json'}: holds {n} ids but synth.json records "
                           f"{key}={want}; the labels are stale")
    (root / "synth.json").write_text("[]")
    message = _refused_in_one_line(lambda: FreiHAND(root, "train", 32))
    assert message == f"{root / 'synth.json'}: expected a JSON object, got list"
    assert _digests(root) | {"synth.json": before["synth.json"]} == before


def test_the_official_training_folder_needs_all_four_versions(tmp_path, monkeypatch):
    """32,560 ids hold exactly 4 x 32,560 images (shrunk here to 3 ids)."""
    import benchmarks.data.freihand as fh

    monkeypatch.setattr(fh, "OFFICIAL_TRAIN_IDS", 3)
    full, partial = tmp_path / "full", tmp_path / "partial"
    freihand_tree(full, n=3, versions=4, frame=16, n_eval=1)
    assert FreiHAND(full, res=8).n_versions == 4 == len(fh.OFFICIAL_VERSIONS)
    freihand_tree(partial, n=3, versions=2, frame=16, n_eval=1)
    before = _digests(partial)
    message = _refused_in_one_line(lambda: FreiHAND(partial, res=8))
    assert message == (f"{partial / 'training' / 'rgb'}: holds 6 images but the official FreiHAND "
                       f"release (4 versions per id) needs 3 ids in training_xyz.json x 4 versions "
                       f"= 12 images")
    assert _digests(partial) == before


def test_more_versions_than_freihand_has_are_refused(tmp_path):
    freihand_tree(tmp_path, n=2, versions=5, frame=16, n_eval=1)
    before = _digests(tmp_path)
    message = _refused_in_one_line(lambda: FreiHAND(tmp_path, res=8))
    assert message == (f"{tmp_path / 'training' / 'rgb'}: holds 10 images = 5 versions of the 2 "
                       f"ids in training_xyz.json, but FreiHAND has at most 4 versions per id")
    assert _digests(tmp_path) == before


def test_stale_evaluation_images_are_refused(tmp_path):
    import shutil

    freihand_tree(tmp_path, n=2, versions=1, frame=16, n_eval=2)
    rgb = tmp_path / "evaluation" / "rgb"
    for i in (2, 3):
        shutil.copy(rgb / "00000000.jpg", rgb / f"{i:08d}.jpg")
    before = _digests(tmp_path)
    message = _refused_in_one_line(lambda: FreiHAND(tmp_path, "eval", 8))
    assert message == (f"{rgb}: holds 4 images but the FreiHAND layout (1 evaluation version per "
                       f"id) needs 2 ids in evaluation_xyz.json x 1 version = 2 images")
    assert _digests(tmp_path) == before
