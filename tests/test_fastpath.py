"""The fast inference path (robustness/fastpath.py): channels_last and torch.compile give identical
RPR results, a failing compile falls back to eager with one warning, bf16 autocast stays within the
documented tolerance, and bad values fail in one line. CPU only, on the tiny MNIST folder."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import compose_config, tiny_run_overrides
from robustlab.data import Split, load_split
from robustlab.errors import RobustlabError
from robustlab.models import SimpleCNN
from robustlab.robustness import make_perturbation, measure_rpr
from robustlab.robustness.attacks import Attack, accuracy_under_attack, fgsm
from robustlab.robustness.fastpath import CPU_BATCH_SIZE, FastForward, check_options, fast_forward, resolve_batch_size

MAX_STEPS = 30
# The tolerances of conf/rpr/default.yaml's autocast comment. On this data bf16 moves few points.
# The bounds leave room for other CPUs' bf16 kernels without hiding a broken path.
ROBUST_RATIO_TOLERANCE, CLEAN_AGREEMENT = 0.05, 0.95


@pytest.fixture(scope="module")
def problem(tiny_mnist_root):
    """A SimpleCNN trained just enough (8 Adam steps) to give a mix of clean-wrong, fragile and robust points."""
    train_x, train_y = load_split("mnist", tiny_mnist_root, train=True, download=False)
    test_x, test_y = load_split("mnist", tiny_mnist_root, train=False, download=False)
    torch.manual_seed(0)
    model = SimpleCNN(channels=(4, 8))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(8):
        batch = torch.randint(0, len(train_x), (32,))
        loss = F.cross_entropy(model(train_x[batch]), train_y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), test_x, test_y, make_perturbation("uniform_linf", epsilon=0.5)


def rpr(problem, **options):
    model, images, labels, perturbation = problem
    return measure_rpr(model, images, labels, perturbation, MAX_STEPS, seed=1, progress=False, **options)


@pytest.fixture(scope="module")
def eager(problem):
    return rpr(problem)


def assert_identical(a, b):
    for name, column in a.columns().items():
        np.testing.assert_array_equal(b.columns()[name], column, err_msg=name)


def fallback_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "robustlab.robustness.fastpath" and r.levelno == logging.WARNING
    ]


def test_problem_is_not_trivial(eager):
    assert 0.05 <= 1 - eager.correct.mean() <= 0.3  # some clean-wrong points
    assert 0.3 <= eager.robust_ratio() <= 0.9
    assert len(set(eager.first_failure[eager.first_failure > 0].tolist())) >= 4  # failures at several retries


def test_compile_and_channels_last_give_identical_results_or_fall_back(problem, eager, caplog):
    caplog.set_level(logging.WARNING)
    model = problem[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert_identical(eager, rpr(problem, channels_last=True))
    assert_identical(eager, rpr(problem, channels_last=True, compile=True))
    assert len(fallback_warnings(caplog)) <= 1  # compiled, or one warning and eager (both give the same numbers)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]) and v.is_contiguous()  # the caller's model is untouched


def test_compile_failing_at_once_warns_once_and_runs_eagerly(problem, eager, caplog, monkeypatch):
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no working C compiler found\nsecond line of the report")

    monkeypatch.setattr(torch, "compile", no_compiler)
    caplog.set_level(logging.WARNING)
    assert_identical(eager, rpr(problem, compile=True))
    (message,) = fallback_warnings(caplog)
    assert "torch.compile failed" in message and "no working C compiler found" in message and "\n" not in message


def test_compile_failing_on_first_call_warns_once_and_runs_eagerly(problem, eager, caplog, monkeypatch):
    """Inductor compiles lazily: a missing compiler shows up on the first forward pass."""

    def lazy(fn, *args, **kwargs):
        def call(x):
            raise RuntimeError("InductorError: CppCompileError")

        return call

    monkeypatch.setattr(torch, "compile", lazy)
    caplog.set_level(logging.WARNING)
    assert_identical(eager, rpr(problem, compile=True, channels_last=True))
    assert len(fallback_warnings(caplog)) == 1


def test_a_genuine_model_error_is_not_taken_for_a_compile_failure(monkeypatch, caplog):
    """The eager model fails too, so its own error surfaces and nothing is logged."""
    monkeypatch.setattr(torch, "compile", lambda fn, *a, **k: fn)
    caplog.set_level(logging.WARNING)
    fast = FastForward(SimpleCNN(channels=(2, 3)), compile=True)
    with pytest.raises(RuntimeError):
        fast(torch.rand(2, 3, 28, 28))  # three channels into a one-channel model
    assert fallback_warnings(caplog) == []


def test_bf16_autocast_within_tolerance(eager, problem):
    fast = rpr(problem, autocast="bf16", channels_last=True)
    assert (fast.clean_pred == eager.clean_pred).mean() >= CLEAN_AGREEMENT
    assert abs(fast.robust_ratio() - eager.robust_ratio()) <= ROBUST_RATIO_TOLERANCE
    assert fast.max_steps == eager.max_steps and np.array_equal(fast.index, eager.index)


def test_autocast_scores_come_back_as_float32(problem):
    scores = fast_forward(problem[0], autocast="bf16")(problem[1][:4])
    assert scores.dtype == torch.float32


def test_batch_size_auto_is_the_cpu_sweet_spot(problem, eager):
    assert resolve_batch_size("auto", problem[0], problem[1]) == CPU_BATCH_SIZE
    assert resolve_batch_size(17, problem[0], problem[1]) == 17
    assert_identical(eager, rpr(problem, batch_size="auto"))


def test_attacks_through_the_fast_path(problem):
    """Gradients flow through FastForward; channels_last moves FGSM's accuracy by at most a point
    (float rounding can flip a near-zero gradient's sign), bf16 stays within the tolerance."""
    model, images, labels, _ = problem
    x, y = images[:40], labels[:40]
    attack, grid = Attack("fgsm", clip=True), [0.0, 0.1, 0.2]
    plain = accuracy_under_attack(model, x, y, grid, attack, batch_size=16)
    wrapped = accuracy_under_attack(fast_forward(model, channels_last=True), x, y, grid, attack, batch_size=16)
    np.testing.assert_allclose(wrapped, plain, atol=1 / 40)
    bf16 = accuracy_under_attack(fast_forward(model, autocast="bf16"), x, y, grid, attack, batch_size=16)
    np.testing.assert_allclose(bf16, plain, atol=ROBUST_RATIO_TOLERANCE)
    assert fgsm(fast_forward(model, channels_last=True), x, y, 0.1).requires_grad is False


# ---------------------------------------------------------------------------------------------
# Bad values: one line each
# ---------------------------------------------------------------------------------------------


def assert_one_line(error) -> None:
    assert "\n" not in str(error.value) and len(str(error.value)) < 200


@pytest.mark.parametrize(
    "options,message",
    [
        ({"autocast": "fp64"}, r"^rpr\.autocast must be null, bf16 or fp16, got fp64$"),
        ({"batch_size": 0}, r"batch_size >= 1"),
        ({"batch_size": "big"}, r"^rpr\.batch_size must be a positive integer or auto, got big$"),
        ({"compile": "yes"}, r"^rpr\.compile must be true or false, got yes$"),
    ],
)
def test_bad_values_fail_in_one_line(problem, options, message):
    with pytest.raises(RobustlabError, match=message) as error:
        rpr(problem, **options)
    assert_one_line(error)


@pytest.mark.parametrize(
    "override,message",
    [
        ("rpr.autocast=fp64", r"^rpr\.autocast must be null, bf16 or fp16, got fp64$"),
        ("rpr.batch_size=0", r"^rpr\.batch_size must be a positive integer or auto, got 0$"),
    ],
)
def test_bad_config_values_fail_in_one_line_before_training(tiny_mnist_root, tmp_path, override, message):
    """The pipeline checks the fast-path values when it is built, not after M has trained."""
    from robustlab.pipelines.rpr_retrain import RPRRetrain

    cfg = compose_config(tiny_run_overrides(tiny_mnist_root) + [override])
    with pytest.raises(RobustlabError, match=message) as error:
        RPRRetrain(cfg, tmp_path)
    assert_one_line(error)


def test_pipeline_passes_the_fast_path_through(tiny_mnist_root, tmp_path, problem, eager):
    from robustlab.pipelines.rpr_retrain import RPRRetrain

    cfg = compose_config(
        tiny_run_overrides(
            tiny_mnist_root,
            **{
                "rpr.batch_size": "auto",
                "rpr.autocast": "bf16",
                "rpr.max_steps": MAX_STEPS,
                "perturbation": "uniform_linf",
                "perturbation.epsilon": 0.5,
                "seed": 1,
            },
        )
    )
    result = RPRRetrain(cfg, tmp_path).measure(
        problem[0], Split(problem[1], problem[2], torch.arange(len(problem[2]))), "M_test"
    )
    assert abs(result.robust_ratio() - eager.robust_ratio()) <= ROBUST_RATIO_TOLERANCE
    assert (tmp_path / "rpr_M_test.csv").is_file()


def test_check_options_names_the_config_group():
    with pytest.raises(RobustlabError, match=r"^attack\.autocast must be null, bf16 or fp16, got fp32$"):
        check_options(autocast="fp32", prefix="attack")
    check_options("auto", True, "fp16")  # all valid
