"""Config composition: typed keys, profiles, one-line errors, stable run ids."""
import pytest

from orchestration import compose
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
    (["profile=paper"], "pretrain.sources.0.root (freihand) is not set"),
    (["seed"], "key=value"),
    (["+finetune.extra=1"], "only existing keys"),
    (["finetune.head=mlp"], "finetune.head must be one of: regression, heatmap"),
    (["finetune.root=median"], "closed_form, prior"),
    (["finetune.optimizer=sgd"], "adam, adamw"),
    (["data.world=moon"], "capture, sphere"),
    (["finetune.augment.rotate_deg=-5"], "finetune.augment.rotate_deg must be >= 0"),
    (["pretrain.augment.hue=0.9"], "pretrain.augment.hue must be in [0, 0.5]"),
    (["finetune.heatmap_sigma=0"], "finetune.heatmap_sigma must be > 0"),
])
def test_bad_input_is_one_line(words, needle):
    with pytest.raises(UserError) as err:
        compose.load(words)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg


def test_paper_profile_pretrains_on_the_freihand_it_fine_tunes_on(tmp_path):
    (tmp_path / "fh").mkdir()
    (tmp_path / "yt").mkdir()
    cfg = compose.load(["method=peclr", "profile=paper", "data=freihand", f"data.root={tmp_path / 'fh'}",
                        f"pretrain.sources.1.root={tmp_path / 'yt'}"])
    assert [(s.name, s.root, s.weight) for s in cfg.pretrain.sources] == [
        ("freihand", str(tmp_path / "fh"), 0.5), ("youtube3d", str(tmp_path / "yt"), 0.5)]
    with pytest.raises(UserError, match=r"^pretrain.sources.1.root \(youtube3d\) is not set"):
        compose.load(["method=peclr", "profile=paper", "data=freihand", f"data.root={tmp_path / 'fh'}"])


def test_run_id_is_a_stable_hash_of_what_matters():
    a = compose.load(["method=simclr", "profile=smoke"])
    b = compose.load(["method=simclr", "profile=smoke", "launcher.name=slurm",
                      "engine.progress=true"])
    c = compose.load(["method=simclr", "profile=smoke", "pretrain.lr=0.01"])
    assert run_id(a) == run_id(b)
    assert run_id(a) != run_id(c)
    assert run_id(a).startswith("simclr-resnet18-10ep-pretrain-lf1-s0-")


def test_paper_profile_keeps_the_published_head_and_the_cpu_profile_names_its_own():
    """The published protocol (direct regression, closed-form root, Adam) is the schema's
    default; the cpu profile's recipe is a set of named options, so its run ids differ."""
    paper = compose.load(["profile=paper", "data=freihand", "data.root=/", "pretrain.sources.1.root=/"])
    assert (paper.finetune.head, paper.finetune.root, paper.finetune.optimizer) == (
        "regression", "closed_form", "adam")
    cpu = compose.load(["profile=cpu"])
    assert (cpu.finetune.head, cpu.finetune.root) == ("heatmap", "prior")
    assert run_id(cpu) != run_id(compose.load(["profile=cpu", "finetune.head=regression"]))


def test_pretraining_cache_key_knows_the_synthetic_world():
    """Backbones pre-trained on one world's images are never reused for the other's."""
    from benchmarks.run import pretrain_key as cache_key

    base = ["method=simclr", "profile=smoke"]
    assert cache_key(compose.load(base)) != cache_key(compose.load([*base, "data.world=sphere"]))
    assert cache_key(compose.load(base)) == cache_key(compose.load([*base, "finetune.lr=0.01"]))
