"""RPR against a slow, obviously correct reference; RPRResult's summaries; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from robustlab import results
from robustlab.errors import RobustlabError
from robustlab.robustness import counter_rng, make_perturbation, measure_rpr, perturb_at
from robustlab.robustness.perturbations import Pixels
from robustlab.robustness.rpr import CLEAN_WRONG, NOT_FAILED, RPRResult

CLASSES, SIDE, POINTS, MAX_STEPS = 4, 8, 48, 30


# ---------------------------------------------------------------------------------------------
# A tiny problem with a mix of clean-wrong, fragile (failing at many different retries) and
# robust points: a nearest-prototype classifier written as one convolution.
# ---------------------------------------------------------------------------------------------


def make_problem():
    g = torch.Generator().manual_seed(0)
    protos = (torch.rand(CLASSES, 1, SIDE, SIDE, generator=g) > 0.5).float()
    conv = nn.Conv2d(1, CLASSES, SIDE)
    with torch.no_grad():
        conv.weight.copy_(protos - 0.5)
        conv.bias.zero_()
    net = nn.Sequential(conv, nn.Flatten())
    labels = torch.arange(POINTS) % CLASSES
    strength = torch.linspace(0.02, 0.25, POINTS)[torch.randperm(POINTS, generator=g)]
    noise = 0.05 * torch.randn(POINTS, 1, SIDE, SIDE, generator=g)
    images = (0.5 + 2 * strength.view(-1, 1, 1, 1) * (protos[labels] - 0.5) + noise).clamp(0, 1)
    return net, images, labels


@pytest.fixture(scope="module")
def problem():
    return make_problem()


def reference_rpr(model, images, labels, perturbation, max_steps, seed, indices=None):
    """The definition, one point and one retry at a time: perturb the *original*, stop at the first miss."""
    indices = torch.arange(len(images)) if indices is None else torch.as_tensor(indices)
    first_failure, fail_pred, clean_pred = [], [], []
    with torch.no_grad():
        for x, y, index in zip(images, labels, indices, strict=True):
            clean = int(torch.as_tensor(model(x[None])).argmax(1)[0])
            clean_pred.append(clean)
            if clean != int(y):
                first_failure.append(0)
                fail_pred.append(-1)
                continue
            ff, fp = -1, -1
            for step in range(1, max_steps + 1):
                keys = counter_rng.point_keys(seed, torch.tensor([int(index)]), torch.tensor([step]))
                pred = int(torch.as_tensor(model(perturbation(x[None], keys))).argmax(1)[0])
                if pred != int(y):
                    ff, fp = step, pred
                    break
            first_failure.append(ff)
            fail_pred.append(fp)
    return np.array(clean_pred), np.array(first_failure), np.array(fail_pred)


SCHEMES_UNDER_TEST = {
    "pixels": lambda: make_perturbation("pixels"),
    "uniform_linf": lambda: make_perturbation("uniform_linf", epsilon=0.3),
}


@pytest.fixture(scope="module", params=sorted(SCHEMES_UNDER_TEST))
def measured(request, problem):
    """(perturbation, reference arrays) for each scheme under test, computed once."""
    net, images, labels = problem
    perturbation = SCHEMES_UNDER_TEST[request.param]()
    return perturbation, reference_rpr(net, images, labels, perturbation, MAX_STEPS, seed=3)


def assert_matches(result: RPRResult, reference, rows=slice(None)):
    clean_pred, first_failure, fail_pred = (a[rows] for a in reference)
    np.testing.assert_array_equal(result.clean_pred, clean_pred)
    np.testing.assert_array_equal(result.first_failure, first_failure)
    np.testing.assert_array_equal(result.fail_pred, fail_pred)
    np.testing.assert_array_equal(result.steps, np.where(first_failure == -1, MAX_STEPS, first_failure))


def test_problem_is_not_trivial(problem, measured):
    """The fixture must exercise every kind of outcome, or the comparisons below prove little."""
    _, (clean_pred, first_failure, _) = measured
    assert (first_failure == 0).sum() >= 2  # clean-wrong
    assert (first_failure == -1).sum() >= 10  # robust
    failing = first_failure[first_failure > 0]
    assert len(failing) >= 4 and len(set(failing.tolist())) >= 3  # failures at several different retries
    assert failing.max() > 4  # some beyond the first block of retries


@pytest.mark.parametrize(
    "batch_size,min_block,max_block",
    [(128, 4, 64), (1, 1, 1), (7, 1, 2), (5, 3, 3), (33, 2, 16), (1000, 64, 64), (16, 4, 8)],
)
def test_measure_rpr_equals_reference_for_any_schedule(problem, measured, batch_size, min_block, max_block):
    net, images, labels = problem
    perturbation, reference = measured
    result = measure_rpr(
        net,
        images,
        labels,
        perturbation,
        MAX_STEPS,
        seed=3,
        batch_size=batch_size,
        min_block=min_block,
        max_block=max_block,
        progress=False,
    )
    assert_matches(result, reference)
    np.testing.assert_array_equal(result.index, np.arange(POINTS))
    np.testing.assert_array_equal(result.label, labels.numpy())
    assert result.max_steps == MAX_STEPS


@pytest.mark.parametrize("channels_last", [True, False])
def test_channels_last_gives_same_results_and_leaves_model_alone(problem, measured, channels_last):
    net, images, labels = problem
    perturbation, reference = measured
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = measure_rpr(
        net, images, labels, perturbation, MAX_STEPS, seed=3, channels_last=channels_last, progress=False
    )
    assert_matches(result, reference)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
        assert v.is_contiguous()  # the caller's module keeps its memory format


def test_plain_function_model_returning_numpy(problem, measured):
    """Model-agnostic: any callable batch -> scores, even one that returns numpy arrays."""
    net, images, labels = problem
    perturbation, reference = measured
    weight = net[0].weight.detach().flatten(1).numpy()  # (classes, pixels)

    def scores(batch: torch.Tensor) -> np.ndarray:
        return batch.flatten(1).numpy() @ weight.T

    result = measure_rpr(scores, images, labels, perturbation, MAX_STEPS, seed=3, batch_size=20, progress=False)
    clean_pred, first_failure, fail_pred = reference_rpr(scores, images, labels, perturbation, MAX_STEPS, seed=3)
    np.testing.assert_array_equal(result.first_failure, first_failure)
    np.testing.assert_array_equal(result.fail_pred, fail_pred)
    np.testing.assert_array_equal(result.clean_pred, clean_pred)
    # the same classifier as the module, so the same numbers (float rounding aside, which this data avoids)
    np.testing.assert_array_equal(result.first_failure, reference[1])


def test_shard_measured_alone_equals_rows_of_the_whole(problem, measured):
    net, images, labels = problem
    perturbation, _ = measured
    indices = torch.arange(POINTS) * 7 + 1000  # dataset indices of the rows, not their positions
    whole = measure_rpr(net, images, labels, perturbation, MAX_STEPS, seed=3, indices=indices, progress=False)
    assert_matches(whole, reference_rpr(net, images, labels, perturbation, MAX_STEPS, 3, indices))
    np.testing.assert_array_equal(whole.index, indices.numpy())
    rows = torch.tensor([40, 3, 17, 5, 29, 11, 0])  # any subset, any order
    shard = measure_rpr(
        net,
        images[rows],
        labels[rows],
        perturbation,
        MAX_STEPS,
        seed=3,
        indices=indices[rows],
        batch_size=9,
        min_block=2,
        max_block=4,
        progress=False,
    )
    for column in ("index", "label", "clean_pred", "first_failure", "fail_pred"):
        np.testing.assert_array_equal(getattr(shard, column), getattr(whole, column)[rows.numpy()])


def test_same_seed_same_steps_other_seed_other_steps(problem):
    net, images, labels = problem
    p = make_perturbation("uniform_linf", epsilon=0.3)
    a = measure_rpr(net, images, labels, p, MAX_STEPS, seed=11, progress=False)
    b = measure_rpr(net, images, labels, p, MAX_STEPS, seed=11, batch_size=13, progress=False)
    c = measure_rpr(net, images, labels, p, MAX_STEPS, seed=12, progress=False)
    np.testing.assert_array_equal(a.steps, b.steps)
    np.testing.assert_array_equal(a.fail_pred, b.fail_pred)
    assert not np.array_equal(a.steps, c.steps)
    np.testing.assert_array_equal(a.clean_pred, c.clean_pred)  # the seed only changes perturbations


def test_failures_regenerate_with_perturb_at(problem, measured):
    """The image RPR reports as the first failure can be rebuilt from (seed, index, step) alone."""
    net, images, labels = problem
    perturbation, _ = measured
    result = measure_rpr(net, images, labels, perturbation, MAX_STEPS, seed=3, progress=False)
    failed = np.flatnonzero(result.first_failure > 0)
    rows = torch.as_tensor(failed)
    perturbed = perturb_at(
        perturbation,
        3,
        images[rows],
        torch.as_tensor(result.index[failed]),
        torch.as_tensor(result.first_failure[failed]),
    )
    with torch.no_grad():
        pred = net(perturbed).argmax(1).numpy()
    np.testing.assert_array_equal(pred, result.fail_pred[failed])
    assert (pred != result.label[failed]).all()


def test_simple_cnn_module(problem):
    """The project's own model class (an nn.Module with input_shape) through measure_rpr."""
    from robustlab.models import SimpleCNN

    torch.manual_seed(0)
    model = SimpleCNN(input_shape=(1, SIDE, SIDE), num_classes=CLASSES, channels=(2, 3), kernel_size=2)
    _, images, labels = problem
    with torch.no_grad():
        labels = model(images).argmax(1)
    labels[::5] = (labels[::5] + 1) % CLASSES
    p = make_perturbation("uniform_linf", epsilon=0.3)
    result = measure_rpr(model, images, labels, p, 10, seed=0, batch_size=17, progress=False)
    reference = reference_rpr(model, images, labels, p, 10, seed=0)
    np.testing.assert_array_equal(result.first_failure, reference[1])
    np.testing.assert_array_equal(result.fail_pred, reference[2])


# ---------------------------------------------------------------------------------------------
# RPRResult summaries
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def result(problem):
    net, images, labels = problem
    return measure_rpr(
        net, images, labels, make_perturbation("uniform_linf", epsilon=0.3), MAX_STEPS, seed=3, progress=False
    )


def test_clean_misclassified_points_are_step_zero_and_not_robust(result):
    wrong = ~result.correct
    assert wrong.sum() >= 2
    assert (result.first_failure[wrong] == CLEAN_WRONG).all()
    assert (result.steps[wrong] == 0).all()
    assert (result.fail_pred[wrong] == -1).all()
    assert not result.robust[wrong].any()
    assert (result.clean_pred[wrong] != result.label[wrong]).all()


def test_robust_points_never_failed(result):
    robust = result.robust
    assert robust.any() and not robust.all()
    assert (result.first_failure[robust] == NOT_FAILED).all()
    assert (result.steps[robust] == MAX_STEPS).all()
    assert (result.fail_pred[robust] == -1).all()
    fragile = result.correct & ~robust
    assert ((result.first_failure[fragile] >= 1) & (result.first_failure[fragile] <= MAX_STEPS)).all()
    assert (result.fail_pred[fragile] != result.label[fragile]).all()
    assert ((result.fail_pred[fragile] >= 0) & (result.fail_pred[fragile] < CLASSES)).all()


def test_robust_ratio_over_all_and_over_correct(result):
    robust, correct = result.robust, result.correct
    assert result.robust_ratio() == pytest.approx(robust.sum() / len(robust))
    assert result.robust_ratio(over="all") == pytest.approx(robust.sum() / POINTS)
    assert result.robust_ratio(over="correct") == pytest.approx(robust.sum() / correct.sum())
    assert result.robust_ratio(over="correct") > result.robust_ratio(over="all")


def test_curve_is_non_increasing_and_ends_at_robust_ratio(result):
    for over in ("all", "correct"):
        grid, curve = result.curve(over)
        np.testing.assert_array_equal(grid, np.arange(MAX_STEPS + 1))
        assert (np.diff(curve) <= 1e-12).all()
        assert curve[-1] == pytest.approx(result.robust_ratio(over=over))
    _, curve = result.curve()
    assert curve[0] == pytest.approx(result.correct.mean())  # MAX_STEPS=0: every correct point is robust
    assert curve[0] > curve[-1]
    for over in ("all", "correct"):
        _, curve = result.curve(over)
        expected = [result.robust_ratio(m, over) for m in range(MAX_STEPS + 1)]
        np.testing.assert_allclose(curve, expected, rtol=0, atol=1e-12)


def test_curve_by_hand():
    # point 0 clean-wrong; 1 and 5 never fooled; 2 fooled at retry 1; 3 and 4 at retry 3
    first_failure = np.array([0, -1, 1, 3, 3, -1])
    label = np.array([0, 1, 2, 3, 0, 1])
    clean_pred = np.array([1, 1, 2, 3, 0, 1])
    fail_pred = np.array([-1, -1, 0, 0, 1, -1])
    r = RPRResult(np.arange(6), label, clean_pred, first_failure, fail_pred, 4)
    grid, curve = r.curve()
    np.testing.assert_array_equal(grid, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(curve, np.array([5, 4, 4, 2, 2]) / 6)
    _, of_correct = r.curve("correct")
    np.testing.assert_allclose(of_correct, np.array([5, 4, 4, 2, 2]) / 5)
    np.testing.assert_array_equal(r.steps, [0, 4, 1, 3, 3, 4])
    np.testing.assert_array_equal(r.robust, [False, True, False, False, False, True])
    with pytest.raises(RobustlabError, match=r"over must be 'all' or 'correct'"):
        r.curve("robust")


def test_robust_at_is_consistent_with_steps(result):
    for m in range(MAX_STEPS + 1):
        expected = result.correct & ((result.first_failure == NOT_FAILED) | (result.steps > m))
        np.testing.assert_array_equal(result.robust_at(m), expected)
        assert result.robust_ratio(m) == pytest.approx(expected.mean())
    np.testing.assert_array_equal(result.robust_at(MAX_STEPS), result.robust)
    np.testing.assert_array_equal(result.robust_at(), result.robust)


def test_robust_at_smaller_max_steps_equals_a_run_with_that_max_steps(problem, result):
    """One run at MAX_STEPS gives the robust ratio of every smaller MAX_STEPS (the paper's curves)."""
    net, images, labels = problem
    short = measure_rpr(net, images, labels, make_perturbation("uniform_linf", epsilon=0.3), 8, seed=3, progress=False)
    np.testing.assert_array_equal(short.robust, result.robust_at(8))


@pytest.mark.parametrize("m", [-1, MAX_STEPS + 1])
def test_robust_at_outside_measured_range_is_an_error(result, m):
    with pytest.raises(RobustlabError, match=rf"max_steps {m} is outside the measured range 0\.\.{MAX_STEPS}"):
        result.robust_at(m)


def test_robust_ratio_rejects_unknown_denominator(result):
    with pytest.raises(RobustlabError, match=r"over must be 'all' or 'correct', got 'robust'"):
        result.robust_ratio(over="robust")


def test_robust_ratio_over_correct_with_no_correct_point_is_nan():
    r = RPRResult(
        np.arange(3),
        np.zeros(3, dtype=np.int64),
        np.ones(3, dtype=np.int64),
        np.zeros(3, dtype=np.int64),
        np.full(3, -1),
        5,
    )
    assert r.robust_ratio() == 0.0
    assert np.isnan(r.robust_ratio(over="correct"))
    _, curve = r.curve("correct")
    assert np.isnan(curve).all()
    _, curve = r.curve("all")
    np.testing.assert_array_equal(curve, np.zeros(6))


def test_save_and_load_round_trip(tmp_path, result):
    path = results.save_rpr(tmp_path / "sub" / "rpr.csv", result)
    assert path.is_file()
    assert not list(path.parent.glob("*.tmp")) and not list(path.parent.glob(".*"))
    loaded = results.load_rpr(path)
    for column in ("index", "label", "clean_pred", "first_failure", "fail_pred"):
        np.testing.assert_array_equal(getattr(loaded, column), getattr(result, column))
    assert loaded.max_steps == result.max_steps
    np.testing.assert_array_equal(loaded.steps, result.steps)
    np.testing.assert_array_equal(loaded.robust, result.robust)
    header = path.read_text().splitlines()[0].split(",")
    assert header == [
        "index",
        "label",
        "clean_pred",
        "first_failure",
        "fail_pred",
        "steps",
        "robust",
        "max_steps",
        "trials",
        "failures",
        "p_hat",
        "p_low",
        "p_high",
    ]
    assert len(path.read_text().splitlines()) == POINTS + 1


def test_load_rpr_missing_or_empty_file(tmp_path):
    with pytest.raises(RobustlabError, match=r"RPR results missing: .*nothing\.csv"):
        results.load_rpr(tmp_path / "nothing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("index,label,clean_pred,first_failure,fail_pred,steps,robust,max_steps\n")
    with pytest.raises(RobustlabError, match=r"are empty"):
        results.load_rpr(empty)


# ---------------------------------------------------------------------------------------------
# Bad input: one line, before any perturbation work
# ---------------------------------------------------------------------------------------------


class CountingPixels(Pixels):
    calls = 0

    def _apply(self, images, keys):
        CountingPixels.calls += 1
        return super()._apply(images, keys)


class CountingModel:
    def __init__(self, classes=CLASSES, input_shape=None):
        self.calls, self.classes = 0, classes
        if input_shape is not None:
            self.input_shape = input_shape

    def __call__(self, x):
        self.calls += 1
        return x.flatten(1)[:, : self.classes]


def expect_error(match, images, labels, perturbation=None, max_steps=5, model=None, **kwargs):
    CountingPixels.calls = 0
    model = CountingModel() if model is None else model
    perturbation = CountingPixels() if perturbation is None else perturbation
    with pytest.raises(RobustlabError, match=match) as error:
        measure_rpr(model, images, labels, perturbation, max_steps, progress=False, **kwargs)
    text = str(error.value)
    assert "\n" not in text, text
    assert CountingPixels.calls == 0, "perturbation work started before the input was checked"
    if isinstance(model, CountingModel):
        assert model.calls <= 1  # at most the one probe that learns the number of classes
    return model


def ok_data(n=6, shape=(1, SIDE, SIDE)):
    return torch.full((n, *shape), 0.5), torch.zeros(n, dtype=torch.int64)


@pytest.mark.parametrize("max_steps", [0, -5, 2.5, None])
def test_bad_max_steps(max_steps):
    images, labels = ok_data()
    model = expect_error(r"rpr\.max_steps must be a positive integer, got", images, labels, max_steps=max_steps)
    assert model.calls == 0


def test_empty_dataset():
    model = expect_error(
        r"the dataset to measure is empty", torch.zeros(0, 1, SIDE, SIDE), torch.zeros(0, dtype=torch.int64)
    )
    assert model.calls == 0


@pytest.mark.parametrize("low,high", [(-0.5, 1.0), (0.0, 255.0), (0.0, 1.0001)])
def test_images_outside_unit_range(low, high):
    images, labels = ok_data()
    images[0, 0, 0, 0], images[1, 0, 0, 0] = low, high
    model = expect_error(r"images must lie in \[0, 1\] \(found .*\); perturbations work in pixel space", images, labels)
    assert model.calls == 0


def test_images_with_nan_are_refused():
    images, labels = ok_data()
    images[2, 0, 3, 3] = float("nan")
    expect_error(r"images must lie in \[0, 1\]", images, labels)


def test_wrong_image_shape_for_a_model_with_input_shape():
    images, labels = ok_data(shape=(3, 32, 32))
    model = expect_error(
        r"the model expects inputs shaped \(1, 28, 28\), the dataset has \(3, 32, 32\)",
        images,
        labels,
        model=CountingModel(input_shape=(1, 28, 28)),
    )
    assert model.calls == 0


def test_wrong_image_shape_for_simple_cnn():
    from robustlab.models import SimpleCNN

    images, labels = ok_data(shape=(3, 32, 32))
    expect_error(
        r"the model expects inputs shaped \(1, 28, 28\), the dataset has \(3, 32, 32\)",
        images,
        labels,
        model=SimpleCNN(channels=(2, 2)),
    )


def test_module_that_rejects_the_input_shape():
    images, labels = ok_data(shape=(1, 6, 6))
    net = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, CLASSES))  # wants 64 pixels, gets 36
    expect_error(r"the model rejected inputs shaped \(1, 6, 6\): ", images, labels, model=net)


@pytest.mark.parametrize("bad", [CLASSES, -1, 99])
def test_labels_outside_the_models_classes(bad):
    images, labels = ok_data()
    labels[3] = bad
    expect_error(rf"labels must be in 0\.\.{CLASSES - 1} \(the model's classes\); found \[{bad}\]", images, labels)


def test_k_larger_than_the_image():
    images, labels = ok_data()
    model = expect_error(
        r"perturbation\.k=65 is larger than the 64 pixels of a 8x8 image",
        images,
        labels,
        perturbation=CountingPixels(k=65),
    )
    assert model.calls == 0


def test_one_label_per_image():
    images, _ = ok_data(6)
    expect_error(r"need one label per image: 5 labels for 6 images", images, torch.zeros(5, dtype=torch.int64))


def test_one_index_per_image():
    images, labels = ok_data(6)
    expect_error(r"need one index per image: 4 indices for 6 images", images, labels, indices=torch.arange(4))


def test_images_without_channel_dimension():
    expect_error(
        r"images must be shaped \(N, C, H, W\), got \(6, 8, 8\)",
        torch.full((6, SIDE, SIDE), 0.5),
        torch.zeros(6, dtype=torch.int64),
    )


@pytest.mark.parametrize("kwargs", [dict(batch_size=0), dict(min_block=0), dict(min_block=8, max_block=4)])
def test_bad_schedule_settings(kwargs):
    images, labels = ok_data()
    expect_error(r"rpr needs batch_size >= 1 and 1 <= min_block <= max_block", images, labels, **kwargs)


def test_model_returning_one_score_per_image():
    images, labels = ok_data()
    expect_error(
        r"the model must return scores shaped \(batch, classes\), got \(2,\)",
        images,
        labels,
        model=lambda x: x.flatten(1).sum(1),
    )


def test_model_that_is_not_callable():
    images, labels = ok_data()
    with pytest.raises(RobustlabError, match=r"model must be an nn\.Module or a callable batch -> scores, got int"):
        measure_rpr(3, images, labels, Pixels(), 5, progress=False)
