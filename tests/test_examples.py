"""robustlab-rpr and the examples/ folder: any model, any image folder, the project's run files; bad input one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robustlab import results
from robustlab.errors import RobustlabError
from robustlab.measure import measure

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))
from common import write_image_folder  # noqa: E402 (examples/common.py is importable only after the path above)


def env() -> dict:
    return os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(EXAMPLES)]), "OMP_NUM_THREADS": "1"}


def measure_config(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from robustlab.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="measure", overrides=overrides)


def check_run(run_dir: Path, points: int) -> dict:
    """The files a project run holds, consistent with each other."""
    metrics = results.read_json(run_dir / "metrics.json")
    rpr = results.load_rpr(run_dir / "rpr_M_test.csv")
    assert len(rpr.index) == points == metrics["M"]["test"]["points"]
    assert metrics["M"]["test"]["robust_ratio"] == pytest.approx(rpr.robust_ratio())
    assert (run_dir / "examples_M_test.npz").is_file() and (run_dir / "figures" / "fig3_robust_ratio_M.png").is_file()
    return metrics


@pytest.mark.parametrize("script", ["torchscript_imagefolder.py", "factory.py"])
def test_command_line_examples_write_a_project_run(script, tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = check_run(tmp_path / "run", 12)
    assert metrics["data"]["classes"] == ["bright", "dark"]
    assert "RPR of " in done.stdout and "robust ratio" in done.stdout


def test_sklearn_example_through_the_python_api(capsys):
    pytest.importorskip("sklearn")
    import sklearn_pipeline

    summary = sklearn_pipeline.main()
    assert summary["points"] == 300 and summary["clean_accuracy"] > 0.9
    assert 0 <= summary["robust_ratio"] <= summary["clean_accuracy"]
    assert "scikit-learn pipeline on 300 digits" in capsys.readouterr().out


def test_same_images_same_numbers_whatever_the_batch(tmp_path):
    images = write_image_folder(tmp_path)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2))
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(model), str(tmp_path / "m.pt"))
    ratios = []
    for batch in (3, 64):
        cfg = measure_config(
            [
                f"model_spec={tmp_path / 'm.pt'}",
                f"data.root={images}",
                "preprocess.resize=[16,16]",
                "perturbation=fog",
                "rpr.max_steps=5",
                f"rpr.batch_size={batch}",
                "figures=false",
            ]
        )
        (tmp_path / str(batch)).mkdir()
        measure(cfg, tmp_path / str(batch))
        ratios.append(results.load_rpr(tmp_path / str(batch) / "rpr_M_test.csv").first_failure.tolist())
    assert ratios[0] == ratios[1]


@pytest.fixture
def linear_model(tmp_path) -> Path:
    """TorchScript of a model for 1x28x28 inputs with 2 outputs."""
    path = tmp_path / "linear.pt"
    torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 2))), str(path))
    return path


def bad(tmp_path: Path, model: str, root: Path, *extra: str):
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    return measure(measure_config([f"model_spec={model}", f"data.root={root}", "rpr.max_steps=3", *extra]), run_dir)


def test_bad_input_is_one_line_each(tmp_path, linear_model):
    images = write_image_folder(tmp_path)  # 40x40 RGB, classes bright / dark
    (tmp_path / "junk.pt").write_text("not a model")
    with pytest.raises(RobustlabError, match="is not a TorchScript model"):
        bad(tmp_path, str(tmp_path / "junk.pt"), images)
    with pytest.raises(RobustlabError, match=r"model=python:nope:build did not load: ModuleNotFoundError"):
        bad(tmp_path, "python:nope:build", images)
    with pytest.raises(RobustlabError, match=r"the model rejected images shaped \(3, 40, 40\).*set preprocess.resize"):
        bad(tmp_path, str(linear_model), images)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RobustlabError, match="holds no images"):
        bad(tmp_path, str(linear_model), tmp_path / "empty")
    (images / "extra").mkdir()
    (images / "extra" / "0.png").write_bytes((images / "dark" / "0.png").read_bytes())
    with pytest.raises(
        RobustlabError, match=r"class folder\(s\) \['extra'\] .* have no output of the model \(2 outputs for 3"
    ):
        bad(tmp_path, str(linear_model), images, "preprocess.resize=[28,28]", "preprocess.channels=1")
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_cli_bad_model_is_one_line_exit_2(tmp_path):
    images = write_image_folder(tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "robustlab.measure",
            f"model={tmp_path / 'missing.pt'}",
            "data=imagefolder",
            f"data.root={images}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        env=env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        (
            f"error: model file not found: {tmp_path / 'missing.pt'}; give a TorchScript file, "
            "a Lightning checkpoint or python:module:factory"
        )
    ]
