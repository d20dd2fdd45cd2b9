"""The forecaster: its likelihoods against torch.distributions, the quantiles its intervals come from, the
non-crossing quantile head, masked gaps, every cell and topology, a training loss that falls, and no look-ahead
through the model (a changed value changes no forecast made before it). Synthetic series only."""

import math

import numpy as np
import pytest
import torch

from rnnkit.data.timeseries import WindowSpec, gather, prepare, read_series, window_origins
from rnnkit.errors import ConfigError
from rnnkit.layers import RecurrentConfig
from rnnkit.models import build_model, model_spec
from rnnkit.models.forecast import (
    QUANTILES,
    Forecaster,
    ForecasterConfig,
    decoder_config,
    forecast_loss,
    gaussian_nll,
    pinball_loss,
    quantiles,
    student_t_nll,
    window_statistics,
)


def make_model(likelihood="student_t", *, cell="lstm", decoder=False, bidirectional=False, C=4, K=2, H=5,
               series=1, embedding=0, window_scaling=True, **rnn_options):  # fmt: skip
    static = embedding + (2 if window_scaling else 0)
    rnn = RecurrentConfig(cell, C + static, 8, batch_first=True, bidirectional=bidirectional, **rnn_options)
    config = ForecasterConfig(C, K, H, rnn, decoder_config(rnn, K + static + 1) if decoder else None, series,
                              embedding, likelihood, head_size=8, window_scaling=window_scaling)  # fmt: skip
    return Forecaster(config)


def batch(B=3, L=7, C=4, H=5, K=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(B, L, C, generator=g)
    inputs[..., 1] = 0.0  # the missing flag: all observed
    return inputs, torch.randn(B, H, K, generator=g), torch.zeros(B, dtype=torch.long)


# -- likelihoods and quantiles ----------------------------------------------------------------------


def test_gaussian_nll_is_torchs_normal_log_prob():
    g = torch.Generator().manual_seed(1)
    y, mu = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    sigma = torch.rand(50, generator=g, dtype=torch.float64) + 0.1
    expected = -torch.distributions.Normal(mu, sigma).log_prob(y)
    torch.testing.assert_close(gaussian_nll(y, mu, sigma), expected)


def test_student_t_nll_is_torchs_student_t_log_prob():
    g = torch.Generator().manual_seed(2)
    y, mu = 3 * torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    sigma = torch.rand(50, generator=g, dtype=torch.float64) + 0.1
    nu = 2.0 + 10 * torch.rand(50, generator=g, dtype=torch.float64)
    expected = -torch.distributions.StudentT(nu, mu, sigma).log_prob(y)
    torch.testing.assert_close(student_t_nll(y, mu, sigma, nu), expected)


def test_pinball_loss_is_minimised_at_the_sample_quantile():
    y = torch.from_numpy(np.random.default_rng(3).standard_normal(401))
    grid = torch.linspace(-3, 3, 1201, dtype=torch.float64)
    for q in (0.1, 0.5, 0.9):
        losses = torch.stack([pinball_loss(y, c.expand(len(y), 1), (q,)).mean() for c in grid])
        best = float(grid[losses.argmin()])
        assert best == pytest.approx(float(np.quantile(y.numpy(), q, method="inverted_cdf")), abs=0.006)


def test_gaussian_quantiles_are_the_inverse_cdf():
    params = torch.tensor([[1.5, 2.0], [-1.0, 0.3]], dtype=torch.float64)
    got = quantiles("gaussian", params)
    for row, (mu, sigma) in zip(got, params):
        expected = torch.distributions.Normal(mu, sigma).icdf(torch.tensor(QUANTILES, dtype=torch.float64))
        torch.testing.assert_close(row, expected)


@pytest.mark.parametrize("nu", [2.5, 4.0, 30.0])
def test_student_t_quantiles_cut_the_distribution_where_they_should(nu):
    """Draws of torch's Student-t fall below each computed quantile as often as its level says."""
    mu, sigma = 2.0, 3.0
    params = torch.tensor([[mu, sigma, nu]], dtype=torch.float64)
    q = quantiles("student_t", params)[0]
    draws = torch.distributions.StudentT(nu, mu, sigma).sample((400_000,))
    below = torch.stack([(draws <= v).double().mean() for v in q])
    torch.testing.assert_close(below, torch.tensor(QUANTILES, dtype=torch.float64), atol=0.003, rtol=0)
    assert q[2] == pytest.approx(mu)  # the median is the location
    wider = quantiles("gaussian", params[:, :2])[0]
    assert q[4] - q[0] > wider[4] - wider[0]  # heavier tails than the Gaussian of the same scale


def test_quantile_head_never_crosses_and_reads_back_its_levels():
    model = make_model("quantile")
    with torch.no_grad():
        model.head.weight.normal_(std=3.0)  # wild raw outputs
        params = model(*batch())
    assert params.shape == (3, 5, len(QUANTILES))
    assert (params.diff(dim=-1) >= 0).all()
    torch.testing.assert_close(quantiles("quantile", params, (0.1, 0.9)), params[..., [1, 3]])
    with pytest.raises(ValueError, match="predicts the levels"):
        quantiles("quantile", params, (0.3,))


def test_the_scores_read_the_quantiles_the_model_predicts():
    """rnnkit.baselines.scoring (a leaf, which cannot import the model) names the same five levels."""
    from rnnkit.baselines import scoring

    assert scoring.QUANTILES == QUANTILES


def test_loss_leaves_out_masked_targets():
    params = torch.tensor([[[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]])
    targets = torch.tensor([[0.5, -1.0, 3.0]])
    mask = torch.tensor([[True, True, False]])
    loss = forecast_loss("gaussian", params, targets, mask)
    changed = forecast_loss("gaussian", params, torch.tensor([[0.5, -1.0, 1e6]]), mask)
    assert loss == changed
    expected = -torch.distributions.Normal(0.0, 1.0).log_prob(torch.tensor([0.5, -1.0])).mean()
    torch.testing.assert_close(loss, expected)


def test_window_statistics_skip_the_gaps():
    inputs = torch.zeros(1, 4, 2)
    inputs[0, :, 0] = torch.tensor([1.0, 3.0, 100.0, 2.0])
    inputs[0, 2, 1] = 1.0  # row 2 is a gap (carried forward in the data; a wild value here)
    location, spread = window_statistics(inputs)
    assert location.item() == pytest.approx(2.0)
    assert spread.item() == pytest.approx(math.sqrt(2 / 3 + 0.01))


# -- the model --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("decoder", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_every_cell_and_topology_forecasts_and_round_trips(cell, decoder, bidirectional):
    model = make_model("gaussian", cell=cell, decoder=decoder, bidirectional=bidirectional, num_layers=2)
    inputs, known, series = batch()
    params = model(inputs, known, series)
    assert params.shape == (3, 5, 2) and (params[..., 1] > 0).all()
    rebuilt = build_model(model_spec(model))
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt(inputs, known, series), params)


def test_rnnkit_options_reach_the_encoder_and_decoder():
    model = make_model("student_t", cell="gru", decoder=True, layer_norm=True, reset="before", zoneout=0.1)
    assert model.rnn.config.layer_norm and model.decoder.config.reset == "before"
    params = model.eval()(*batch())
    assert params.shape == (3, 5, 3) and (params[..., 2] > 2).all()


def test_series_embedding_separates_the_series():
    model = make_model("gaussian", series=3, embedding=4)
    inputs, known, _ = batch()
    with torch.no_grad():
        a = model(inputs, known, torch.tensor([0, 0, 0]))
        b = model(inputs, known, torch.tensor([0, 1, 2]))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])


def test_bad_configs_name_the_problem():
    rnn = RecurrentConfig("lstm", 6, 8, batch_first=True)
    with pytest.raises(ConfigError, match="likelihood must be one of"):
        ForecasterConfig(4, 2, 5, rnn, likelihood="poisson")
    with pytest.raises(ConfigError, match="rnn.input_size"):
        ForecasterConfig(5, 2, 5, rnn)
    other = RecurrentConfig("gru", 5, 8, batch_first=True)
    with pytest.raises(ConfigError, match="the encoder's cell"):
        ForecasterConfig(4, 2, 5, rnn, other)


def sine_csv(tmp_path, n=160, name="s.csv", change=None):
    rng = np.random.default_rng(0)
    rows = ["t,y,x"]
    for t in range(n):
        y = 10 + 3 * math.sin(2 * math.pi * t / 12) + 0.02 * t + 0.3 * rng.standard_normal()
        if change is not None and t == change:
            y += 50.0
        rows.append(f"{t},{'' if t == 40 else f'{y:.4f}'},{math.cos(t / 5):.4f}")
    path = tmp_path / name
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("decoder", [False, True])
def test_training_loss_falls(tmp_path, decoder):
    torch.manual_seed(0)
    prepared = prepare(read_series(sine_csv(tmp_path), "y", features="x"), WindowSpec(horizon=6, lookback=24))
    w = gather(prepared, *window_origins(prepared, "train"))
    inputs, known, targets, mask = (torch.from_numpy(a) for a in (w.inputs, w.known, w.targets, w.mask))
    series = torch.from_numpy(w.series)
    model = make_model("gaussian", decoder=decoder, C=inputs.shape[-1], K=0, H=6)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        loss = forecast_loss("gaussian", model(inputs, known, series), targets, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5  # in nats per point: the seasonal shape is learnt


@pytest.mark.parametrize("decoder", [False, True])
def test_a_changed_value_changes_no_earlier_forecast(tmp_path, decoder):
    """Forecasts from every origin up to t are the same when the value at row t changes (the statistics
    fitted before are held, as a run holds them); later forecasts change, so the test can fail."""
    spec = WindowSpec(horizon=6, lookback=24)
    before = prepare(read_series(sine_csv(tmp_path), "y", features="x"), spec)
    model = make_model("student_t", decoder=decoder, bidirectional=True, C=len(before.channels), K=0, H=6).eval()
    t = 100
    after = prepare(read_series(sine_csv(tmp_path, name="c.csv", change=t), "y", features="x"), spec,
                    stats=before.stats)  # fmt: skip
    origins = np.arange(spec.lookback, len(before.series[0].target) + 1)
    which = np.zeros_like(origins)

    def forecasts(prepared):
        w = gather(prepared, which, origins)
        with torch.no_grad():
            return model(torch.from_numpy(w.inputs), torch.from_numpy(w.known), torch.from_numpy(w.series))

    a, b = forecasts(before), forecasts(after)
    same = origins <= t
    assert torch.equal(a[torch.from_numpy(same)], b[torch.from_numpy(same)])
    assert not torch.equal(a[torch.from_numpy(origins == t + 1)], b[torch.from_numpy(origins == t + 1)])
