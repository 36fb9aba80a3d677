"""trainer=auto is the default: the GPU when there is one, else the CPU, where it trains and measures
exactly as trainer=cpu; each run records where it computed (strings only)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from conftest import compose_config, tiny_run_overrides
from robustlab.cli import run
from robustlab.pipelines.devices import compute_device, runtime_info


def test_the_default_trainer_is_auto_on_one_device(tiny_mnist_root):
    trainer = compose_config(tiny_run_overrides(tiny_mnist_root)).trainer
    assert trainer.accelerator == "auto" and trainer.devices == 1


def test_auto_on_a_cpu_gives_the_numbers_of_trainer_cpu(tiny_mnist_root, tmp_path):
    runs = {}
    for trainer in ("cpu", "auto"):
        pl.seed_everything(0, verbose=False)
        overrides = tiny_run_overrides(
            tiny_mnist_root, **{"model.lr": 0.01, "rpr.balance.per_class": 3, "model_cache": "null"}
        )
        runs[trainer] = run(compose_config(overrides + [f"trainer={trainer}"]), tmp_path / trainer)
    assert runs["auto"]["M"] == runs["cpu"]["M"] and runs["auto"]["M_R"] == runs["cpu"]["M_R"]
    for name in ("M", "M_R"):
        a, c = (torch.load(tmp_path / t / f"{name}.ckpt", weights_only=False)["state_dict"] for t in ("auto", "cpu"))
        assert all(torch.equal(a[k], c[k]) for k in c), name
    for table in ("rpr_M_test.csv", "rpr_M_train.csv", "rpr_M_R_test.csv"):
        assert (tmp_path / "auto" / table).read_bytes() == (tmp_path / "cpu" / table).read_bytes(), table
    assert runs["auto"]["runtime"]["device"] == "cpu"


def test_models_are_evaluated_on_the_trainer_device(monkeypatch):
    assert compute_device(OmegaConf.create({"accelerator": "cpu"})).type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert compute_device(OmegaConf.create({"accelerator": "auto"})).type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert compute_device(OmegaConf.create({"accelerator": "auto"})).type == "cuda"
    assert compute_device(OmegaConf.create({"accelerator": "gpu"})).type == "cuda"


def test_runtime_info_is_strings_naming_the_device_and_versions():
    info = runtime_info(torch.nn.Linear(2, 2))
    assert info["device"] == "cpu" and info["torch"] == torch.__version__ and info["lightning"] == pl.__version__
    assert set(info) >= {"device_name", "cuda", "cuda_available", "python"}
    assert all(isinstance(v, str) for v in info.values())
