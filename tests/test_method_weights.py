"""weights: released backbones from a file, named by the user's label and by their bytes."""
import json

import pytest
import torch
import torchvision

import methods
from orchestration import compose
from benchmarks.backbone import create_backbone
from benchmarks.backbone_weights import apply_init, strip_prefixes
from orchestration.cli import main
from benchmarks.config import run_id
from benchmarks.errors import UserError

Weights = methods.get("weights")
FAST = ["profile=smoke", "finetune.epochs=1", "finetune.eval_points=1", "engine.progress=false"]


def torchvision_file(path, seed=0, wrap=None, prefix=""):
    torch.manual_seed(seed)
    state = {prefix + k: v for k, v in torchvision.models.resnet18().state_dict().items()}
    if prefix:
        state[prefix.split(".")[0] + "_head.weight"] = torch.zeros(3)   # what a wrapper adds
    torch.save({wrap: state} if wrap else state, path)
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.mark.parametrize("wrap,prefix", [(None, ""), ("state_dict", "encoder."),
                                         ("state_dict", "module.encoder."), (None, "backbone.")])
def test_layouts_and_prefixes_load_exactly_and_say_what_was_stripped(tmp_path, wrap, prefix, monkeypatch):
    want = torchvision_file(tmp_path / "w.pth", wrap=wrap, prefix=prefix)
    said = []
    cfg = Weights.Config(weights=str(tmp_path / "w.pth"), label="released")
    backbone = create_backbone("resnet18")
    apply_init(Weights.init_weights(cfg), backbone, say=said.append)
    got = backbone.net.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in got if not k.startswith("fc."))
    assert said == ([f"method.weights w.pth: stripped {prefix!r}, dropped 1 other keys"]
                    if prefix else [])


def test_strip_keeps_a_state_without_prefixes_as_is():
    own = {"conv1.weight": torch.zeros(1), "model.x": torch.zeros(1)}
    assert strip_prefixes(own, own) == (own, [])


def test_a_wrong_architecture_names_missing_and_unexpected_keys(tmp_path):
    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "r50.pth")
    cfg = Weights.Config(weights=str(tmp_path / "r50.pth"), label="r50")
    with pytest.raises(UserError, match=r"does not fit resnet18: \d+ missing keys .*unexpected") as err:
        apply_init(Weights.init_weights(cfg), create_backbone("resnet18"))
    assert "\n" not in str(err.value)


def test_the_run_id_hashes_the_bytes_not_the_path(tmp_path):
    torchvision_file(tmp_path / "a.pth", seed=0)
    (tmp_path / "copy.pth").write_bytes((tmp_path / "a.pth").read_bytes())
    torchvision_file(tmp_path / "other.pth", seed=1)
    ids = {name: run_id(compose.load(["method=weights", f"method.weights={tmp_path / name}",
                                      "method.label=lab-net", *FAST]))
           for name in ("a.pth", "copy.pth", "other.pth")}
    assert ids["a.pth"] == ids["copy.pth"] != ids["other.pth"]
    assert ids["a.pth"].startswith("lab-net-resnet18-")


@pytest.mark.parametrize("words,needle", [
    (["method=weights"], "method=weights needs method.weights=FILE"),
    (["method=weights", "method.weights=/nope.pth", "method.label=x"], "no such file: /nope.pth"),
    (["method=weights", "method.weights=W", "method.label=imagenet"], "'imagenet' is a registered method"),
    (["method=weights", "method.weights=W"], "needs method.label=NAME"),
])
def test_bad_settings_are_one_line(tmp_path, words, needle):
    torchvision_file(tmp_path / "w.pth")
    words = [w.replace("=W", f"={tmp_path / 'w.pth'}") for w in words]
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(".", r"\.")):
        compose.load([*words, *FAST])


def test_a_run_records_the_label_the_hash_and_external_pretraining(tmp_path, data_cache, capsys):
    torchvision_file(tmp_path / "w.pth", prefix="encoder.", wrap="state_dict")
    results = tmp_path / "results"
    code = main(["run", "--method", "weights", "--profile", "smoke", "--results", str(results),
                 f"method.weights={tmp_path / 'w.pth'}", "method.label=peclr-released",
                 "finetune.epochs=1", "finetune.eval_points=1"])
    out = capsys.readouterr().out
    assert code == 0 and "stripped 'encoder.'" in out
    rec = json.loads(next(results.glob("*/result.json")).read_text())
    assert rec["method"] == "peclr-released" and rec["run_id"].startswith("peclr-released-")
    assert len(rec["config"]["method"]["sha256"]) == 64
    assert rec["compute"]["external_pretrain"].startswith("released weights peclr-released (w.pth")
    assert rec["compute"]["pretrain_flops"] == 0
