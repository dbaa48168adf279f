"""Config composition: typed keys, profiles, one-line errors, stable run ids."""
import pytest

from benchmarks import compose
from benchmarks.config import run_id
from benchmarks.errors import UserError


def test_profile_and_overrides_compose():
    cfg = compose.load(["method=peclr", "profile=smoke", "finetune.label_fraction=0.5", "seed=3"])
    assert cfg.method.name == "peclr" and cfg.profile == "smoke"
    assert cfg.finetune.label_fraction == 0.5 and cfg.seed == 3
    assert cfg.data.res == 32                      # from the smoke profile
    assert cfg.method.temperature == 0.5           # the method's own config dataclass


@pytest.mark.parametrize("words,needle", [
    (["finetune.lrr=1"], "lrr"),
    (["method=simclr", "method.temprature=1"], "temprature"),
    (["method=nosuch"], "choose one of: random, imagenet, simclr"),
    (["profile=huge"], "smoke, cpu, paper"),
    (["budget=12parsecs"], "ep, step, img, tflop, pflop, h"),
    (["finetune.label_fraction=1.5"], "finetune.label_fraction must be in (0, 1]"),
    (["finetune.label_fraction=abc"], "label_fraction"),
    (["backbone=vgg"], "resnet18"),
    (["match=both"], "pretrain, total"),
    (["data=freihand"], "data.root is not set"),
    (["data=freihand", "data.root=/no/such/dir"], "no such directory"),
    (["seed"], "key=value"),
    (["+finetune.extra=1"], "only existing keys"),
])
def test_bad_input_is_one_line(words, needle):
    with pytest.raises(UserError) as err:
        compose.load(words)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg


def test_run_id_is_a_stable_hash_of_what_matters():
    a = compose.load(["method=simclr", "profile=smoke"])
    b = compose.load(["method=simclr", "profile=smoke", "launcher.name=slurm",
                      "engine.progress=true"])
    c = compose.load(["method=simclr", "profile=smoke", "pretrain.lr=0.01"])
    assert run_id(a) == run_id(b)
    assert run_id(a) != run_id(c)
    assert run_id(a).startswith("simclr-resnet18-10ep-pretrain-lf1-s0-")
