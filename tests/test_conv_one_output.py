"""A convolutional network or model with one output column, (m, 1) output weights, evaluated on
1-D targets: the objective reads the (n, 1) predictions as (n,), as ConvexModel.objective does."""

import numpy as np
import pytest

from cvxnn.conv import ConvNetwork, PatchGeometry, network_to_conv


@pytest.mark.parametrize("gated", [False, True])
def test_objective_one_output_column_with_1d_targets(gated):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((10, 25)), rng.standard_normal(10)
    geo = PatchGeometry.make((5, 5), (3, 3))
    net = ConvNetwork(filters=rng.standard_normal((9, 4)), alpha=rng.standard_normal((4, 1)), geometry=geo,
                      gates=rng.standard_normal((9, 4)) if gated else None)
    model = network_to_conv(net, X)
    assert model.predict(X).shape == (10, 1)
    lam = 0.1
    pred = net.predict(X)[:, 0]
    loss = 0.5 * float(np.sum((pred - y) ** 2))
    assert net.objective(X, y, lam) == pytest.approx(loss + lam * net.penalty(), rel=1e-12)
    # the same predictions; the convex penalty is no larger than the network's (one output)
    assert model.objective(X, y, lam) == pytest.approx(loss + lam * model.penalty(), rel=1e-10)
    assert model.objective(X, y, lam) <= net.objective(X, y, lam) + 1e-10
    # (n, 1) targets give the same values
    assert model.objective(X, y[:, None], lam) == pytest.approx(model.objective(X, y, lam), rel=1e-12)
