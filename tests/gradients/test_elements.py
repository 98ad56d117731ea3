"""Gradient elements (dml.gradients.elements): known losses are element combinations, others integrate to nothing.

Each combination that corresponds to a loss must reproduce that loss's autograd gradient to 1e-10 in float64, and
one SGD step through a network; the curl of the 2-D (S_ap, S_an) field separates integrable combinations from
the others.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dml.losses
from dml.gradients import build_update, curl, decompose, triplet_field
from dml.gradients.elements import PAIR_WEIGHTS, TRIPLET_WEIGHTS

TAU = 0.1
GAMMA, CIRCLE_M = 8.0, 0.25


def _batch(seed: int, labels: list[int], dim: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(labels), dim, generator=g, dtype=torch.float64)
    x = x * (0.5 + 2.0 * torch.rand(len(labels), 1, generator=g, dtype=torch.float64))
    return x, torch.tensor(labels)


def _grad(loss_fn, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    loss_fn(x, labels).backward()
    return x.grad


def _circle_single_pair(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Circle loss (Sun et al. 2020) on every (anchor, positive, negative) triplet, weights detached, mean."""
    f = F.normalize(x, dim=1)
    s = f @ f.t()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    a, p, n = ((same & ~eye)[:, :, None] & ~same[:, None, :]).nonzero(as_tuple=True)
    s_ap, s_an = s[a, p], s[a, n]
    alpha_p = (1 + CIRCLE_M - s_ap).clamp_min(0).detach()
    alpha_n = (s_an + CIRCLE_M).clamp_min(0).detach()
    z = alpha_n * (s_an - CIRCLE_M) - alpha_p * (s_ap - 1 + CIRCLE_M)
    return torch.logaddexp(torch.zeros_like(z), GAMMA * z).mean()  # F.softplus is linear above 20/GAMMA


# (reference loss, the same loss as elements, labels): every pair loss here is reproduced exactly.
KNOWN = {
    "nca-all": (
        lambda: dml.losses.build("nca", temperature=TAU),
        lambda: build_update(triplet="nca", pair="constant", scale=1 / TAU, triplet_kwargs={"temperature": TAU}),
        [0, 0, 0, 1, 1, 2, 2, 2, 3],
    ),
    "nca-hardest": (
        lambda: dml.losses.build("nca", temperature=TAU, triplets="hardest"),
        lambda: build_update(triplet="nca", mining="hardest", scale=1 / TAU, triplet_kwargs={"temperature": TAU}),
        [0, 0, 0, 1, 1, 2, 2, 2, 3],
    ),
    "circle-single-pair": (
        lambda: _circle_single_pair,
        lambda: build_update(
            triplet="circle",
            pair="linear",
            scale=GAMMA,
            triplet_kwargs={"gamma": GAMMA, "margin": CIRCLE_M},
            pair_kwargs={"margin": CIRCLE_M},
        ),
        [0, 0, 1, 1, 2, 2],
    ),
    # Labels [0, 0, 1]: anchors 0 and 1 have one positive and one negative each, anchor 2 none (MS skips it and
    # divides by N = 3; the update averages over the 2 triplets, hence scale 2/3).
    "multi-similarity-single-pair": (
        lambda: dml.losses.build("multi_similarity", mining=False),
        lambda: build_update(triplet="constant", pair="multi_similarity", scale=2 / 3),
        [0, 0, 1],
    ),
    "triplet-margin": (
        lambda: dml.losses.build("triplet", margin=0.2),
        lambda: build_update(triplet="margin", reduction="active", triplet_kwargs={"margin": 0.2}),
        [0, 0, 0, 1, 1, 2, 2, 2, 3],
    ),
    "triplet-margin-mean": (
        lambda: dml.losses.build("triplet", margin=0.2, reduction="all"),
        lambda: build_update(triplet="margin", triplet_kwargs={"margin": 0.2}),
        [0, 0, 0, 1, 1, 2, 2, 2, 3],
    ),
    "contrastive": (
        lambda: dml.losses.build("contrastive", pos_margin=0.9, neg_margin=0.1),
        lambda: build_update(
            triplet="constant",
            pair="contrastive",
            mining="pairs",
            reduction="active",
            pair_kwargs={"pos_margin": 0.9, "neg_margin": 0.1},
        ),
        [0, 0, 0, 1, 1, 2, 2, 2, 3],
    ),
}


@pytest.mark.parametrize("case", list(KNOWN))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_known_loss_is_its_elements(case: str, seed: int) -> None:
    reference, elements, labels = KNOWN[case]
    x, y = _batch(seed, labels)
    expected, got = _grad(reference(), x, y), _grad(elements(), x, y)
    assert expected.abs().max() > 1e-3  # the batch exercises the loss
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("case", ["nca-all", "multi-similarity-single-pair", "triplet-margin", "contrastive"])
def test_the_elements_reproduce_a_training_step_through_a_network(case: str) -> None:
    reference, elements, labels = KNOWN[case]
    x, y = _batch(7, labels, dim=5)
    params = {}
    for name, loss_fn in (("loss", reference()), ("elements", elements())):
        torch.manual_seed(3)
        model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4)).double()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(3):
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        params[name] = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.manual_seed(3)
    start = torch.cat(
        [
            p.detach().flatten()
            for p in torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4))
            .double()
            .parameters()
        ]
    )
    assert (params["loss"] - start).abs().max() > 1e-4  # the steps moved the network
    torch.testing.assert_close(params["elements"], params["loss"], rtol=0, atol=1e-10)


def test_the_trainer_runs_the_elements_as_a_loss(tmp_path) -> None:
    """``loss.name=gradient_surgery`` with NCA's elements trains like ``loss.name=nca`` (float32, two epochs)."""
    import dml.train
    from dml.train.config import load_config

    common = [
        "data.name=synthetic",
        "data.kwargs={num_classes: 8, images_per_class: 6, image_size: 16, seed: 0}",
        "data.sampler={variant: filled, p: 4, k: 2, repeat: 1}",
        "model.backbone=small_cnn",
        "model.pretrained=false",
        "model.embedding_dim=8",
        "model.backbone_kwargs={widths: [4, 8], norm: none}",
        "optim.name=sgd",
        "optim.lr=0.1",
        "train.epochs=2",
        "eval.ks=[1]",
        "eval.include=[recall]",
        "device=cpu",
    ]
    variants = {
        "nca": ["loss.name=nca", "loss.kwargs={temperature: 0.1}"],
        "elements": ["loss.name=gradient_surgery", "loss.kwargs={triplet: nca, pair: constant, scale: 10.0}"],
    }
    states = {}
    for name, extra in variants.items():
        config = load_config(None, [*common, *extra, f"output_dir={tmp_path / name}"])
        with contextlib.redirect_stdout(io.StringIO()):
            dml.train.train(config)
        states[name] = dml.train.load_model(tmp_path / name, device="cpu").state_dict()
    for key, value in states["nca"].items():
        torch.testing.assert_close(states["elements"][key], value, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("direction", ["cosine", "euclidean"])
def test_decompose_sees_the_constructed_weights(direction: str) -> None:
    update = build_update(triplet="nca", pair="linear", direction=direction, mining="easy_hard")
    x, y = _batch(4, [0, 0, 1, 1, 2, 2, 3, 3])
    torch.testing.assert_close(decompose(update, x, y).gradient, _grad(update, x, y), rtol=0, atol=1e-12)


def test_dropping_the_projection_adds_only_a_radial_part() -> None:
    x, y = _batch(5, [0, 0, 1, 1, 2, 2])
    kwargs = dict(triplet="circle", pair="linear", triplet_kwargs={"gamma": GAMMA})
    on, off = _grad(build_update(**kwargs), x, y), _grad(build_update(projection=False, **kwargs), x, y)
    radial = off - on
    unit = F.normalize(x, dim=1)
    assert radial.abs().max() > 1e-3
    torch.testing.assert_close(radial, (radial * unit).sum(1, keepdim=True) * unit, rtol=0, atol=1e-12)
    assert (on * unit).sum(1).abs().max() < 1e-12  # the projected update is tangent
    with pytest.raises(ValueError, match="radial"):
        decompose(build_update(projection=False), x, y)


GRID = torch.linspace(-0.9, 0.95, 23, dtype=torch.float64)
S_AP, S_AN = torch.meshgrid(GRID, GRID + 0.013, indexing="xy")  # off the kinks of the indicator elements

INTEGRABLE = {
    "NCA": dict(triplet="nca", pair="constant"),
    "multi-similarity (one pair)": dict(triplet="constant", pair="multi_similarity"),
    "Circle, m = 0": dict(triplet="circle", pair="linear", triplet_kwargs={"gamma": GAMMA, "margin": 0.0}),
    "triplet margin": dict(triplet="margin", pair="constant"),
    "contrastive pairs": dict(triplet="constant", pair="contrastive"),
    "order-2 logits": dict(triplet="constant", pair="linear"),
}
NOT_INTEGRABLE = {
    "NCA x linear": dict(triplet="nca", pair="linear"),
    "NCA x multi-similarity": dict(triplet="nca", pair="multi_similarity"),
    "Circle x linear, m = 0.25 (detached weights)": dict(
        triplet="circle",
        pair="linear",
        triplet_kwargs={"gamma": GAMMA, "margin": CIRCLE_M},
        pair_kwargs={"margin": CIRCLE_M},
    ),
}


@pytest.mark.parametrize("name", list(INTEGRABLE))
def test_combinations_of_a_loss_have_no_curl(name: str) -> None:
    assert curl(build_update(**INTEGRABLE[name]), S_AP, S_AN).abs().max() < 1e-10


@pytest.mark.parametrize("name", list(NOT_INTEGRABLE))
def test_other_combinations_integrate_to_no_loss(name: str) -> None:
    update = build_update(**NOT_INTEGRABLE[name])
    assert curl(update, S_AP, S_AN).abs().max() > 1e-2
    # Independently of autograd: the circulation around a small square is not zero (Stokes), for one cell.
    a, b, h = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.2, dtype=torch.float64), 0.05
    t = torch.linspace(0, 1, 2001, dtype=torch.float64)

    def field(s_ap, s_an):
        pull, push = update.field(s_ap, s_an)
        return -pull, push

    sides = [
        (a + h * t, b + 0 * t, 1, 0),
        (a + h + 0 * t, b + h * t, 0, 1),
        (a + h - h * t, b + h + 0 * t, -1, 0),
        (a + 0 * t, b + h - h * t, 0, -1),
    ]
    circulation = sum(torch.trapezoid(field(x, y)[0] * dx * h + field(x, y)[1] * dy * h, t) for x, y, dx, dy in sides)
    assert abs(float(circulation)) > 1e-6


def test_nca_linear_curl_has_its_closed_form() -> None:
    sigma = torch.sigmoid((S_AN - S_AP) / TAU)
    expected = sigma * (1 - sigma) / TAU * (1 - S_AP - S_AN.clamp_min(0))
    got = curl(build_update(triplet="nca", pair="linear"), S_AP, S_AN)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


def test_the_elements_feed_the_triplet_space_simulation() -> None:
    update = build_update(triplet="nca", pair="constant", scale=1.0, triplet_kwargs={"temperature": 1.0})
    field = triplet_field(update.rule(), lr=0.1)
    reference = triplet_field(dml.gradients.nca_rule(1.0), lr=0.1)
    np.testing.assert_allclose(field.d_ap, reference.d_ap, atol=1e-12)
    np.testing.assert_allclose(field.d_an, reference.d_an, atol=1e-12)


def test_every_element_is_registered_and_named() -> None:
    assert set(TRIPLET_WEIGHTS) == {"constant", "nca", "circle", "margin"}
    assert set(PAIR_WEIGHTS) == {"constant", "linear", "multi_similarity", "contrastive"}
    assert "gradient_surgery" in dml.losses.available()
    update = dml.losses.build("gradient_surgery", triplet="circle", pair="multi_similarity", direction="euclidean")
    assert update.name == "circle/multi_similarity/euclidean/proj"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(triplet="ncaa"), ValueError, "nca"),
        (dict(pair="lin"), ValueError, "linear"),
        (dict(direction="angular"), ValueError, "cosine"),
        (dict(mining="pairs", triplet="nca"), ValueError, "triplet='constant'"),
        (dict(triplet_kwargs={"temp": 0.1}), TypeError, "temp"),
        (dict(scale=0.0), ValueError, "scale"),
        (dict(triplet_kwargs={"temperature": -1.0}), ValueError, "temperature"),
    ],
)
def test_bad_arguments_fail_loudly(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        build_update(**kwargs)


def test_a_batch_without_triplets_gives_a_zero_update() -> None:
    x, y = _batch(0, [0, 1, 2, 3])
    assert _grad(build_update(), x, y).abs().max() == 0
