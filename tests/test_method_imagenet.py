"""imagenet: weights from a local file (timm or torchvision layout) or timm's hub, else one line."""
import pytest
import torch
import torchvision

import methods
from benchmarks import hub_weights
from benchmarks.backbone import create_backbone
from benchmarks.backbone_weights import apply_init
from benchmarks.errors import UserError

ImageNet = methods.get("imagenet")


def load_init(cfg, backbone):
    """What the harness does for an init-only method: load the weights it declares."""
    apply_init(ImageNet.init_weights(cfg), backbone)


def load(tmp_path, obj, name="w.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    backbone = create_backbone("resnet18")
    load_init(ImageNet.Config(weights=str(path)), backbone)
    return backbone.net.state_dict()


def test_declares_external_pretraining():
    assert ImageNet.pretrains is False and ImageNet.passes_per_sample == 0
    assert ImageNet.external_pretrain == "ImageNet-1k supervised (timm weights)"


def test_torchvision_state_dict_with_fc_loads_exactly(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None)
    with torch.no_grad():                                    # running stats are loaded too
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    file_state = tv.state_dict()
    assert any(k.startswith("fc.") for k in file_state)
    loaded = load(tmp_path, file_state)
    assert loaded.keys() == {k for k in file_state if not k.startswith("fc.")}
    assert all(torch.equal(loaded[k], file_state[k]) for k in loaded)


def test_timm_state_dict_wrapped_and_without_batch_counters(tmp_path):
    torch.manual_seed(1)
    file_state = create_backbone("resnet18").net.state_dict()
    trimmed = {k: v for k, v in file_state.items() if not k.endswith("num_batches_tracked")}
    loaded = load(tmp_path, {"state_dict": trimmed})
    assert all(torch.equal(loaded[k], trimmed[k]) for k in trimmed)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_init(ImageNet.Config(weights=str(tmp_path / "absent.pth")),
                               create_backbone("resnet18"))


def test_weights_of_another_architecture_are_refused(tmp_path):
    state = create_backbone("resnet18").net.state_dict()
    deeper = dict(state, **{"layer1.2.conv1.weight": state["layer1.1.conv1.weight"]})
    with pytest.raises(UserError, match="does not fit resnet18: 0 missing .* 1 unexpected"):
        load(tmp_path, deeper)
    with pytest.raises(UserError, match="wrong shape"):
        load(tmp_path, dict(state, **{"conv1.weight": torch.zeros(64, 3, 3, 3)}))


def test_not_a_state_dict_is_a_user_error(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a torch state dict"):
        load_init(ImageNet.Config(weights=str(tmp_path / "junk.pth")),
                               create_backbone("resnet18"))


def test_offline_without_cache_says_how_to_provide_weights(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UserError) as err:
        load_init(ImageNet.Config(), create_backbone("resnet18"))
    msg = str(err.value)
    assert "\n" not in msg and "offline" in msg and "method.weights=PATH" in msg


def test_an_unreachable_hub_is_one_line_at_once(tmp_path, monkeypatch):
    """Not offline by setting, but no network: no minute of retries, no warnings."""
    import time

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.invalid")
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    t = time.perf_counter()
    with pytest.raises(UserError, match="hub.invalid is not reachable and no cached copy"):
        load_init(ImageNet.Config(), create_backbone("resnet18"))
    assert time.perf_counter() - t < hub_weights.HUB_TIMEOUT_S + 2


def test_a_cached_copy_loads_without_the_hub(tmp_path, monkeypatch):
    import timm

    torch.manual_seed(5)
    net = timm.create_model("resnet18", pretrained=False)
    weights = tmp_path / "model.safetensors"
    from safetensors.torch import save_file
    save_file(net.state_dict(), weights)
    monkeypatch.setattr(hub_weights, "_cached_file", lambda name: str(weights))
    monkeypatch.setattr(hub_weights, "hub_reachable", lambda: False)
    backbone = create_backbone("resnet18")
    load_init(ImageNet.Config(), backbone)
    want = net.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in backbone.net.state_dict().items())


def test_hub_weights_are_copied_into_the_backbone(monkeypatch):
    """With a reachable hub, timm's pretrained model is built and its weights copied."""
    import timm

    torch.manual_seed(2)
    hub_net = timm.create_model("resnet18", pretrained=False, num_classes=0)
    calls = []

    def fake_create_model(name, pretrained=False, num_classes=None):
        calls.append((name, pretrained, num_classes))
        return hub_net

    backbone = create_backbone("resnet18")
    monkeypatch.setattr(timm, "create_model", fake_create_model)
    monkeypatch.setattr(hub_weights, "hub_reachable", lambda: True)
    monkeypatch.setattr(hub_weights, "_cached_file", lambda name: None)
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    load_init(ImageNet.Config(tag="tv_in1k"), backbone)
    assert calls == [("resnet18.tv_in1k", True, 0)]
    want = hub_net.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in backbone.net.state_dict().items())
