"""A method is refused, before any training and in one line, on a pre-training source that
lacks what it trains on (2D keypoints, sequences, the synthetic world): otherwise it trains on
NaN labels or on another set than the record names, and is still charged the FLOPs."""
from __future__ import annotations

import pytest

import methods
from benchmarks.config import INPUT_NEEDS, SOURCE_HAS, SOURCES
from orchestration import compose
from orchestration.cli import main


def needs(name: str) -> set[str]:
    cls = methods.get(name)
    return {INPUT_NEEDS[i] for i in cls.inputs if i in INPUT_NEEDS} if cls.pretrains else set()


PAIRS = [(m, s) for m in methods.names() for s in SOURCES]


def test_every_method_input_and_source_is_described():
    from methods.base import INPUTS

    assert set(SOURCE_HAS) == set(SOURCES)
    assert set(INPUT_NEEDS) <= set(INPUTS)
    assert {n for has in SOURCE_HAS.values() for n in has} == set(INPUT_NEEDS.values())


@pytest.mark.parametrize("method,source", PAIRS)
def test_a_source_is_refused_exactly_when_it_lacks_what_the_method_needs(method, source, tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    words = [f"method={method}", f"pretrain.sources.0.name={source}"]
    if "resnet" not in methods.get(method).backbones:
        words.append("backbone=vit_tiny_patch16_224")
    if not source.startswith("synthetic"):
        words.append(f"pretrain.sources.0.root={root}")
    if method in ("imagenet", "weights"):
        return                      # init-only: its weights file is another test's concern
    missing = needs(method) - set(SOURCE_HAS[source])
    if missing:
        with pytest.raises(Exception) as err:
            compose.load(words, need_data=False)
        assert type(err.value).__name__ == "UserError"
        assert f"method {method} needs" in str(err.value)
        assert f"pretrain.sources.0.name={source} does not have" in str(err.value)
    else:
        compose.load(words, need_data=False)


@pytest.mark.parametrize("method", ["supervised2d", "jointcon", "trajreg", "synthetic3d"])
@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_a_labelless_source_exits_2_before_any_training(method, dry, tmp_path, capsys):
    """The issue's case: supervised2d with a YouTube3DHands-only source trained on loss 0.0."""
    yt = tmp_path / "yt"
    yt.mkdir()
    rc = main(["run", "--method", method, "--profile", "smoke", "--budget", "1ep",
               "pretrain.sources.0.name=youtube3d", f"pretrain.sources.0.root={yt}",
               "--results", str(tmp_path / "r"), *(["--dry-run"] if dry else [])])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert f"method {method} needs" in err and "pretrain.sources.0.name=youtube3d" in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
