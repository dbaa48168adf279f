"""The CI smoke sweep: every registered method runs end to end and the report is built on it."""
import json

import timm
import torch

import methods
from orchestration.cli import main


def test_every_method_runs_and_reports(tmp_path, monkeypatch, data_cache):
    weights = tmp_path / "standin-resnet18.pth"           # a stand-in: no hub in CI
    torch.save(timm.create_model("resnet18", num_classes=0).state_dict(), weights)
    monkeypatch.setenv("BENCH_IMAGENET_WEIGHTS", str(weights))
    results = tmp_path / "runs"

    assert main(["sweep", "sweeps/smoke.yaml", "--results", str(results)]) == 0
    records = [json.loads(p.read_text()) for p in sorted(results.glob("*/result.json"))]
    rows = [n if n != "weights" else "standin-released" for n in methods.names()]
    assert sorted(r["method"] for r in records) == sorted(rows)
    for r in records:
        assert r["status"] == "ok", (r["method"], r["error"])
        assert all(torch.isfinite(torch.tensor(r["metrics"][k])) for k in ("epe_mm", "pa_epe_mm"))
    imagenet = next(r for r in records if r["method"] == "imagenet")
    assert imagenet["compute"]["external_pretrain"] and imagenet["config"]["method"]["weights"] == str(weights)

    out = tmp_path / "report"
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    main_table = (out / "tables" / "table1_main.md").read_text()
    for name in rows:
        assert f"| {name} |" in main_table
    released = next(r for r in records if r["method"] == "standin-released")
    assert released["compute"]["external_pretrain"].startswith("released weights standin-released")
    assert (out / "figures" / "fig1_pa_epe.png").stat().st_size > 0
