"""The C training steps (kernels/csrc/_lstm.c, _gru.c, _rnn.c) against the same loops in PyTorch and the reference
backend."""

import sys

import pytest
import torch

import rnnkit
from rnnkit import stack
from rnnkit.cells import as_tuple
from rnnkit.kernels import _ext, cgru, clstm, crnn, dispatch

# (options, training mode, lengths, bidirectional, layers); H=13 leaves a remainder after the vector lanes
SETTINGS = {
    "plain": (dict(), False, False, False, 1),
    "layer_norm": (dict(layer_norm=True), True, False, False, 1),
    "layer_norm without biases": (dict(layer_norm=True, bias=False), True, False, False, 1),
    "zoneout dropout train lengths": (dict(zoneout=0.3, recurrent_dropout=0.3), True, True, False, 1),
    "zoneout eval bidir lengths": (dict(zoneout=0.4), False, True, True, 1),
    "everything train": (
        dict(layer_norm=True, recurrent_dropout=0.25, zoneout=0.2, skip_connections=True, dropout=0.3),
        True,
        True,
        True,
        2,
    ),  # fmt: skip
}


CELLS = {
    "lstm": (rnnkit.LSTM, {}, clstm),
    "lstm peephole": (rnnkit.LSTM, dict(peephole=True), clstm),
    "gru": (rnnkit.GRU, {}, cgru),
    "gru before": (rnnkit.GRU, dict(reset="before"), cgru),
    "rnn tanh": (rnnkit.RNN, {}, crnn),
    "rnn relu": (rnnkit.RNN, dict(nonlinearity="relu"), crnn),
}


def outputs_and_grads(cell, setting, backend, c_steps, monkeypatch, dtype=torch.float32, T=9, B=5, I=6, H=13):
    """Outputs, final state and the gradients of a random functional of them; the same numbers drawn for
    every backend and dtype (drawn in float32, then cast)."""
    monkeypatch.setenv("RNNKIT_C_CELLS", "1" if c_steps else "0")
    options, training, with_lengths, bidirectional, layers = SETTINGS[setting]
    torch.manual_seed(0)
    cls, cell_options, _ = CELLS[cell]
    layer = cls(I, H, layers, bidirectional=bidirectional, **cell_options, **options, backend=backend)
    layer = layer.to(dtype).train(training)
    g = torch.Generator().manual_seed(3)
    n = layers * (2 if bidirectional else 1)
    x = torch.randn(T, B, I, generator=g).to(dtype).requires_grad_()
    state = tuple(
        torch.randn(n, B, H, generator=g).to(dtype).requires_grad_() for _ in range(2 if cls is rnnkit.LSTM else 1)
    )
    lengths = torch.tensor([T, 2, 4, T, 1]) if with_lengths else None
    torch.manual_seed(5)  # the masks: the same draws on every path
    out, final = layer(x, state if cls is rnnkit.LSTM else state[0], lengths=lengths)
    g = torch.Generator().manual_seed(11)
    loss = sum((t * torch.randn(t.shape, generator=g)).sum() for t in (out, *as_tuple(final)))
    names = ["x", "h0", "c0"][: 1 + len(state)] + [name for name, _ in layer.named_parameters()]
    grads = torch.autograd.grad(loss, [x, *state, *layer.parameters()])
    finals = dict(zip(["h_T", "c_T"], as_tuple(final)))
    return {"output": out, **finals, **dict(zip(names, grads))}


def scaled_errors(a: dict, b: dict) -> dict[str, float]:
    """max |a - b| / max |b| for every output and gradient (float32 rounding grows with each tensor's scale)."""
    assert a.keys() == b.keys()
    return {name: ((a[name].double() - b[name].double()).abs().max() / b[name].abs().max()).item() for name in a}


@pytest.mark.skipif(sys.platform != "linux", reason="the C steps are built and tested on Linux")
def test_c_steps_are_built():
    assert dispatch.c_cells_available(), "the C training steps were not built (setup.py)"


PRODUCTS = {"torch.mm": 10**9, "packed C": 1}  # each loop's per-step products: C_PRODUCT_MIN_STEPS


@pytest.mark.skipif(not dispatch.c_cells_available(), reason="the C steps were not built")
@pytest.mark.parametrize("product", list(PRODUCTS))
@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("cell", list(CELLS))
def test_c_steps_match_the_pytorch_loops(cell, setting, product, monkeypatch):
    calls, in_c_loops = [], []
    module = CELLS[cell][2]
    forward = module.forward
    monkeypatch.setattr(module, "forward", lambda *args: calls.append(1) or forward(*args))
    # with the products in C the whole loop is one call (rk_<cell>_forward_steps, ...)
    kinds = ("lstm", "gru", "gru_before", "rnn")
    for name in [f"rk_{c}_{d}_steps" for c in kinds for d in ("forward", "backward")]:
        function = getattr(_ext.cells_lib, name)
        monkeypatch.setattr(_ext.cells_lib, name, lambda *args, f=function, n=name: in_c_loops.append(n) or f(*args))
    monkeypatch.setattr(dispatch, "C_PRODUCT_MIN_STEPS", PRODUCTS[product])
    in_c = outputs_and_grads(cell, setting, "fused", True, monkeypatch)
    assert calls, f"the fused {cell} did not run its steps in C"
    if product == "torch.mm":
        assert not in_c_loops
    else:
        kind = "gru_before" if cell == "gru before" else cell.split()[0]
        assert set(in_c_loops) == {f"rk_{kind}_forward_steps", f"rk_{kind}_backward_steps"}, set(in_c_loops)
    calls.clear()
    in_torch = outputs_and_grads(cell, setting, "fused", False, monkeypatch)
    assert not calls
    errors = scaled_errors(in_c, in_torch)
    assert max(errors.values()) < 2e-5, errors


@pytest.mark.skipif(not dispatch.c_cells_available(), reason="the C steps were not built")
@pytest.mark.parametrize("product", list(PRODUCTS))
@pytest.mark.parametrize("setting", ["plain", "layer_norm", "layer_norm without biases", "zoneout eval bidir lengths"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_c_steps_as_close_to_float64_as_pytorch_float32(cell, setting, product, monkeypatch):
    """Against the reference backend in float64 (settings without random masks, whose draws depend on the
    dtype), the C steps' float32 error is of the order of PyTorch's own float32 error."""
    monkeypatch.setattr(dispatch, "C_PRODUCT_MIN_STEPS", PRODUCTS[product])
    exact = outputs_and_grads(cell, setting, "reference", False, monkeypatch, dtype=torch.float64)
    in_c = scaled_errors(outputs_and_grads(cell, setting, "fused", True, monkeypatch), exact)
    in_torch = scaled_errors(outputs_and_grads(cell, setting, "reference", False, monkeypatch), exact)
    for name in exact:
        assert in_c[name] <= max(4 * in_torch[name], 2e-6), (name, in_c[name], in_torch[name])


def test_c_steps_apply_to_float32_cpu_only_and_not_to_projections(monkeypatch):
    monkeypatch.setenv("RNNKIT_C_CELLS", "1")
    x, W = torch.zeros(2, 1, 3), torch.zeros(8, 2)
    assert dispatch.c_steps_apply(x, W) == dispatch.c_cells_available()
    plan = dispatch.fused_plan(W, 20)
    assert plan.c_steps == plan.c_products == dispatch.c_cells_available()
    assert not plan.for_cell(proj_size=1).c_steps  # a projection
    assert not dispatch.c_steps_apply(x.double(), W.double())
    monkeypatch.setenv("RNNKIT_C_CELLS", "0")
    assert not dispatch.c_steps_apply(x, W)


@pytest.mark.skipif(not dispatch.c_cells_available(), reason="the C steps were not built")
@pytest.mark.parametrize("B", [1, 2, 3, 6, 7])
@pytest.mark.parametrize("cell", ["lstm", "gru before"])
def test_c_loops_take_every_batch_remainder(cell, B, monkeypatch):
    """The packed product takes the batch in blocks of four rows, then the rest (1-3) in one block."""
    monkeypatch.setattr(dispatch, "C_PRODUCT_MIN_STEPS", 1)
    in_c = outputs_and_grads(cell, "plain", "fused", True, monkeypatch, B=B)
    in_torch = outputs_and_grads(cell, "plain", "fused", False, monkeypatch, B=B)
    errors = scaled_errors(in_c, in_torch)
    assert max(errors.values()) < 2e-5, errors


@pytest.mark.skipif(not dispatch.c_cells_available(), reason="the C steps were not built")
def test_auto_runs_plain_gru_and_rnn_in_the_c_loops_on_long_cpu_sequences(monkeypatch):
    """torch's CPU GRU and RNN kernels are slower than the fused backend's C loops: auto takes those for
    float32 on the CPU over C_PRODUCT_MIN_STEPS steps, and still computes what torch.nn does."""
    monkeypatch.setenv("RNNKIT_C_CELLS", "1")
    chosen = []
    for name, run in list(stack.BACKENDS.items()):
        monkeypatch.setitem(stack.BACKENDS, name, lambda *args, n=name, f=run: chosen.append(n) or f(*args))
    torch.manual_seed(0)
    for theirs in [torch.nn.GRU(3, 5, 2, bidirectional=True), torch.nn.RNN(3, 5, nonlinearity="relu")]:
        ours = {torch.nn.GRU: rnnkit.GRU, torch.nn.RNN: rnnkit.RNN}[type(theirs)].from_torch(theirs)
        steps = dispatch.C_PRODUCT_MIN_STEPS
        assert ours.backend_for(steps) == "fused" and ours.backend_for(steps - 1) == "torch"
        for T in (steps - 1, steps + 4):
            chosen.clear()
            x = torch.randn(T, 2, 3)
            torch.testing.assert_close(ours(x)[0], theirs(x)[0], rtol=1e-5, atol=1e-5)
            assert chosen == ["fused" if T >= steps else "torch"]
        assert ours.double().backend_for(100) == "torch"
    assert rnnkit.LSTM(3, 5).backend_for(100) == "torch"  # torch's CPU LSTM kernel is as fast
    monkeypatch.setenv("RNNKIT_C_CELLS", "0")
    assert rnnkit.GRU(3, 5).backend_for(100) == "torch"


@pytest.mark.skipif(not dispatch.c_cells_available(), reason="the C steps were not built")
@pytest.mark.parametrize("cell", list(CELLS))
def test_c_loops_give_the_same_numbers_on_more_threads(cell, monkeypatch):
    """The loops share out rows and panels among OpenMP threads with a barrier after each part; every
    number is still computed by one thread in one order, so 2 and 3 threads (the suite runs on 1) must give
    the same bits as 1. A missing barrier or a shared write shows here as a difference."""
    monkeypatch.setattr(dispatch, "C_PRODUCT_MIN_STEPS", 1)
    results = {}
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results[threads] = outputs_and_grads(cell, "everything train", "fused", True, monkeypatch, T=12, H=50)
    finally:
        torch.set_num_threads(previous)
    for threads in (2, 3):
        for name, value in results[1].items():
            assert torch.equal(results[threads][name], value), (threads, name)


@pytest.mark.skipif(not dispatch.c_cells_available(), reason="the C steps were not built")
@pytest.mark.parametrize("cls", [rnnkit.GRU, rnnkit.RNN, rnnkit.LSTM])
def test_fused_under_cpu_autocast_computes_in_float32(cls, monkeypatch):
    """Under autocast the fused backend runs its loops in the weights' dtype (its C loops take float32
    only), giving what it gives outside autocast; auto leaves the plain cells to torch's kernels there."""
    monkeypatch.setenv("RNNKIT_C_CELLS", "1")
    torch.manual_seed(0)
    layer = cls(3, 5, 2, backend="fused")
    x = torch.randn(dispatch.C_PRODUCT_MIN_STEPS + 2, 2, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = layer(x)[0]
        assert rnnkit.GRU(3, 5).backend_for(100) == "torch"
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, layer(x)[0], rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="float32 only"):  # the last guard before the raw pointers
        hs, W = torch.zeros(3, 1, 4), torch.zeros(16, 4)
        _ext.forward_steps("lstm", None, hs, W, torch.zeros(2, 1, 16, dtype=torch.bfloat16), None, None, False, True)


@pytest.mark.skipif(not dispatch.c_cells_available(), reason="the C steps were not built")
def test_auto_stays_with_torch_under_torch_func(monkeypatch):
    """The fused Functions have no setup_context, so torch.func transforms cannot run them: where auto
    would take the C loops for a plain GRU, a transform's wrapped weights or input send it to torch's kernel.
    (torch.func.vmap has no batching rule for torch's GRU kernel either.)"""
    monkeypatch.setenv("RNNKIT_C_CELLS", "1")
    torch.manual_seed(0)
    layer = rnnkit.GRU(3, 5)
    x = torch.randn(dispatch.C_PRODUCT_MIN_STEPS + 4, 2, 3)
    params = {name: p.detach() for name, p in layer.named_parameters()}

    def loss(params, x):
        return torch.func.functional_call(layer, params, (x,))[0].square().sum()

    grads = torch.func.grad(loss)(params, x)
    expected = torch.autograd.grad(layer(x)[0].square().sum(), list(layer.parameters()))
    for name, g in zip(params, expected):
        torch.testing.assert_close(grads[name], g, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not dispatch.c_cells_available(), reason="the C steps were not built")
def test_pack_in_c_equals_the_torch_layout(monkeypatch):
    g = torch.Generator().manual_seed(0)
    for R, K in [(1, 1), (13, 7), (24, 64), (100, 61), (1024, 130)]:
        W = torch.randn(R, K, generator=g)
        in_c = _ext.pack(W)
        monkeypatch.setenv("RNNKIT_C_CELLS", "0")
        in_torch = _ext.pack(W)
        monkeypatch.setenv("RNNKIT_C_CELLS", "1")
        assert in_c.shape == in_torch.shape == (-(-R // _ext.PANEL), K, _ext.PANEL)
        assert torch.equal(in_c, in_torch)
        assert torch.equal(in_c.transpose(1, 2).reshape(-1, K)[:R], W)  # panel p, row j is W[24 p + j]
