"""The CI smoke sweep: every registered method runs end to end and the report is built on it."""
import json

import timm
import torch

import methods
from orchestration.cli import main

VIT_TINY = "vit_tiny_patch16_224"


def test_every_method_runs_and_reports(tmp_path, monkeypatch, data_cache):
    weights = tmp_path / "standin-resnet18.pth"           # a stand-in: no hub in CI
    torch.save(timm.create_model("resnet18", num_classes=0).state_dict(), weights)
    monkeypatch.setenv("BENCH_IMAGENET_WEIGHTS", str(weights))
    results = tmp_path / "runs"

    assert main(["sweep", "sweeps/smoke.yaml", "--results", str(results)]) == 0
    records = [json.loads(p.read_text()) for p in sorted(results.glob("*/result.json"))]
    rows = [n if n != "weights" else "standin-released" for n in methods.names()]
    on_resnet = [n for n in rows if n == "standin-released" or "resnet" in methods.get(n).backbones]
    vits = [("mae", VIT_TINY), ("dino", VIT_TINY), ("random", "vit_small_patch16_224")]
    expected = sorted([(n, "resnet18") for n in on_resnet] + vits)
    assert sorted((r["method"], r["backbone"]) for r in records) == expected
    for r in records:
        assert r["status"] == "ok", (r["method"], r["backbone"], r["error"])
        assert all(torch.isfinite(torch.tensor(r["metrics"][k])) for k in ("epe_mm", "pa_epe_mm"))
        assert r["compute"]["finetune_flops"] > 0, r["run_id"]
        pretrains = r["compute"]["pretrain_flops"] > 0
        # every pre-training on synthetic frames measures its objective on held-out frames
        assert (r.get("pretraining") is not None) == pretrains, r["run_id"]
        if pretrains:
            block = r["pretraining"]
            objective = block["objective"]
            assert block["images"] > 0
            assert all(torch.isfinite(torch.tensor(block[end][objective])) for end in ("start", "end"))
    imagenet = next(r for r in records if r["method"] == "imagenet")
    assert imagenet["compute"]["external_pretrain"] and imagenet["config"]["method"]["weights"] == str(weights)

    out = tmp_path / "report"
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    main_table = (out / "tables" / "table1_main.md").read_text()
    for name in rows:
        assert f"| {name} |" in main_table
    pretext = (out / "tables" / "table6_pretraining.md").read_text()
    for name in ("simhand", "tempclr", "byol", "mocov3", "dino", "barlowtwins", "mae"):
        assert f"| {name} |" in pretext, name
    released = next(r for r in records if r["method"] == "standin-released")
    assert released["compute"]["external_pretrain"].startswith("released weights standin-released")
    assert (out / "figures" / "fig1_pa_epe.png").stat().st_size > 0
