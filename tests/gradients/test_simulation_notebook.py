"""The released notebook's third map, ``Triplet_Map_2nd``, as :func:`dml.gradients.second_order_nca_rule`.

The reference is my transcription of ``Triplet_Map_2nd`` in ``triplet_gradient_simulation.ipynb`` of
github.com/littleredxh/HardNegative (commit f5f392377fd0) at ``projection=0``, the notebook's own setting: closed
forms of the updated, re-normalised similarities after one step with ``w_ap = 1 - S_ap``, ``w_an = S_an`` and
``β = lr e^{S_an²/2} / (e^{S_ap - S_ap²/2} + e^{S_an²/2})``, then the entanglement ``m = p S_ap S_an``.
"""

from __future__ import annotations

import numpy as np
import pytest

from dml.gradients import nca_rule, notebook_rule, one_step, sct_rule, second_order_nca_rule, triplet_field


def triplet_map_2nd(s_ap, s_an, lr, entanglement):
    p_vert, n_vert = np.sqrt(1 - s_ap**2), np.sqrt(1 - s_an**2)
    s_pn = s_ap * s_an
    w_ap, w_an = 1 - s_ap, s_an
    beta = lr * np.exp(0.5 * s_an**2) / (np.exp(s_ap - 0.5 * s_ap**2) + np.exp(0.5 * s_an**2))
    ap_new = (1 + (w_ap * beta) ** 2) * s_ap + 2 * w_ap * beta - w_ap * w_an * beta**2 * s_an - w_an * beta * s_pn
    an_new = (1 + (w_an * beta) ** 2) * s_an - 2 * w_an * beta - w_ap * w_an * beta**2 * s_ap + w_ap * beta * s_pn
    fp_norm = np.sqrt((1 + w_ap * beta * s_ap) ** 2 + (beta * w_ap * p_vert) ** 2)
    fn_norm = np.sqrt((1 - w_an * beta * s_an) ** 2 + (beta * w_an * n_vert) ** 2)
    fa_norm = np.sqrt(
        (1 + w_ap * beta * s_ap - w_an * beta * s_an) ** 2 + (beta * w_ap * p_vert) ** 2 + (beta * w_an * n_vert) ** 2
    )
    d_pos = ap_new / (fp_norm * fa_norm) - s_ap
    d_neg = an_new / (fn_norm * fa_norm) - s_an
    m = entanglement * s_ap * s_an
    return d_pos + m * d_neg, d_neg + m * d_pos


GRID = np.linspace(0.0, 1.0, 20)  # the notebook's grid (N = 20)


@pytest.mark.parametrize("lr, p", [(0.1, 0.0), (0.1, 0.5), (0.3, 1.0)])
def test_second_order_rule_is_the_notebooks_triplet_map_2nd(lr, p):
    field = triplet_field(second_order_nca_rule(), GRID, lr=lr, p=p)
    d_ap, d_an = triplet_map_2nd(field.s_ap, field.s_an, lr, p)
    np.testing.assert_allclose(field.d_ap, d_ap, rtol=0, atol=1e-12)
    np.testing.assert_allclose(field.d_an, d_an, rtol=0, atol=1e-12)


def test_triplet_map_2nd_differs_from_nca_and_from_sct():
    s_ap, s_an = np.meshgrid(GRID, GRID)
    second = one_step(second_order_nca_rule(), s_ap, s_an)
    for other in (nca_rule(1.0), sct_rule(1.0)):
        assert not np.allclose(one_step(other, s_ap, s_an)[1], second[1], atol=1e-6)


def test_rules_by_the_notebooks_names():
    s_ap, s_an = np.meshgrid(GRID, GRID)
    assert notebook_rule("Triplet_Map_2nd").name == second_order_nca_rule().name
    np.testing.assert_array_equal(
        one_step(notebook_rule("Triplet_Map_1st"), s_ap, s_an)[0], one_step(nca_rule(1.0), s_ap, s_an)[0]
    )
    assert notebook_rule("Triplet_Map_std").direction == "euclidean"
    with pytest.raises(ValueError, match="notebook map.*Triplet_Map_2nd"):
        notebook_rule("Triplet_Map_3rd")
