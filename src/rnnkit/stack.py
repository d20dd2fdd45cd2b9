"""Running a recurrent stack over time: the step loop, reversal within lengths, stacking, dropout between
layers, skip connections, and the three backends that compute it (:mod:`rnnkit.kernels.dispatch` picks).

A backend maps (layer, x (T, B, I), initial state, lengths (B,) or None, masks per cell, plan) to
(output (T, B, F), final state). States are stacked over cells as torch stacks them: (h,) or (h, c),
each (L * D, B, *); an initial state of None means zeros. Layers draw masks, so every backend sees
the same ones.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.cells import CellSpec, CellWeights, State, as_tuple
from rnnkit.kernels import dispatch
from rnnkit.kernels.fused import fused_cell

Masks = tuple[Tensor | None, tuple[Tensor, ...] | None]
Stacked = tuple[Tensor, ...]
Backend = Callable[[nn.Module, Tensor, Stacked | None, Tensor | None, list[Masks], dispatch.Plan],
                   tuple[Tensor, Stacked]]  # fmt: skip


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of x (T, B, ...) within its length, leaving the padding at the end."""
    if lengths is None:
        return x.flip(0)
    T = x.shape[0]
    t = torch.arange(T, device=x.device).unsqueeze(1)  # (T, 1)
    index = torch.where(t < lengths, lengths - 1 - t, t)  # (T, B); an involution
    return x.gather(0, index.view(T, -1, *([1] * (x.dim() - 2))).expand_as(x))


def run_cell(spec: CellSpec, w: CellWeights, x: Tensor, state: State, valid: Tensor | None, masks: Masks,
             training: bool) -> tuple[Tensor, State]:  # fmt: skip
    """The step loop over x (T, B, I): one step of the cell's equations per step; padded steps keep the state."""
    recurrent_mask, zoneout_masks = masks
    outputs = []
    for t in range(x.shape[0]):
        zoneout_mask = None if zoneout_masks is None else tuple(m[t] for m in zoneout_masks)
        out, new_state = spec.advance(w, x[t], state, recurrent_mask, zoneout_mask, training)
        if valid is not None:
            keep = valid[t].unsqueeze(-1)  # (B, 1)
            new_state = tuple(torch.where(keep, n, o) for n, o in zip(as_tuple(new_state), as_tuple(state)))
            new_state = new_state if isinstance(state, tuple) else new_state[0]
            out = out.masked_fill(~keep, 0.0)
        outputs.append(out)
        state = new_state
    return torch.stack(outputs), state


def run_stack(layer, x: Tensor, initial: Stacked | None, lengths: Tensor | None, masks: list[Masks],
              cell_runner: Callable) -> tuple[Tensor, Stacked]:  # fmt: skip
    """Every layer and direction of the stack, each cell run over its sequence by ``cell_runner(spec, weights,
    x, state, valid, masks, training)``."""
    c = layer.config
    B, D = x.shape[1], c.num_directions
    valid = None if lengths is None else torch.arange(x.shape[0], device=x.device).unsqueeze(1) < lengths  # (T, B)
    layer_input, layer_outputs, finals = x, [], []
    specs = layer.specs
    for layer_index in range(c.num_layers):
        directions = []
        for direction in range(D):
            i = layer_index * D + direction
            seq = layer_input if direction == 0 else reverse_padded(layer_input, lengths)
            spec = specs[i]
            if initial is None:
                state = spec.init_state(B, device=x.device, dtype=x.dtype)
            else:
                state = tuple(part[i] for part in initial) if len(initial) > 1 else initial[0][i]
            out, final = cell_runner(spec, layer.cell_weights(i), seq, state, valid, masks[i], layer.training)
            directions.append(out if direction == 0 else reverse_padded(out, lengths))
            finals.append(final)
        out = directions[0] if D == 1 else torch.cat(directions, dim=-1)  # (T, B, D * H_out)
        layer_outputs.append(out)
        if layer_index < c.num_layers - 1:
            out = F.dropout(out, c.dropout, layer.training)
            layer_input = torch.cat([x, out], dim=-1) if c.skip_connections else out
    output = torch.cat(layer_outputs, dim=-1) if c.skip_connections else layer_outputs[-1]
    return output, tuple(torch.stack(parts) for parts in zip(*[as_tuple(s) for s in finals]))


def run_reference(layer, x: Tensor, initial: Stacked | None, lengths: Tensor | None, masks: list[Masks],
                  plan: dispatch.Plan):  # fmt: skip
    """The definition of correct: every layer and direction as a plain step loop over its cell's equations."""
    return run_stack(layer, x, initial, lengths, masks, run_cell)


def run_fused(layer, x: Tensor, initial: Stacked | None, lengths: Tensor | None, masks: list[Masks],
              plan: dispatch.Plan):  # fmt: skip
    """The same stack with each cell as a fused recurrence and hand-written BPTT (:mod:`rnnkit.kernels`)."""
    return run_stack(layer, x, initial, lengths, masks, functools.partial(fused_cell, plan=plan))


def run_torch(layer, x: Tensor, initial: Stacked | None, lengths: Tensor | None, masks: list[Masks],
              plan: dispatch.Plan):  # fmt: skip
    """torch's own multi-layer kernels (cuDNN on GPU): only for configurations with ``is_plain``."""
    c = layer.config
    weights = layer._flat_weights
    if initial is None:
        LD, B = len(layer._all_weights), x.shape[1]
        sizes = (c.output_size, c.hidden_size) if c.cell == "lstm" else (c.hidden_size,)
        initial = tuple(x.new_zeros(LD, B, n) for n in sizes)
    hx = initial if c.cell == "lstm" else initial[0]
    function = {"lstm": torch._VF.lstm, "gru": torch._VF.gru, "rnn": getattr(torch._VF, f"rnn_{c.nonlinearity}")}[
        c.cell
    ]
    flags = (c.bias, c.num_layers, float(c.dropout), layer.training, c.bidirectional)
    if lengths is None:
        result = function(x, hx, weights, *flags, False)
        output = result[0]
    else:
        packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        hx = tuple(h.index_select(1, packed.sorted_indices) for h in as_tuple(hx))
        result = function(packed.data, packed.batch_sizes, hx if c.cell == "lstm" else hx[0], weights, *flags)
        output, _ = pad_packed_sequence(packed._replace(data=result[0]), total_length=x.shape[0])
        result = (result[0], *(h.index_select(1, packed.unsorted_indices) for h in result[1:]))
    return output, tuple(result[1:])  # (h_n,) or (h_n, c_n), each (L * D, B, *)


BACKENDS: dict[str, Backend] = {"reference": run_reference, "torch": run_torch, "fused": run_fused}


def pack_like(output: Tensor, lengths: Tensor, like: PackedSequence) -> PackedSequence:
    """Pack a padded (T, B, F) output with the batch order of the input ``like``."""
    order = like.sorted_indices
    if order is not None:
        output = output.index_select(1, order.to(output.device))
        lengths = lengths.index_select(0, order.to(lengths.device))
    data = pack_padded_sequence(output, lengths.cpu(), enforce_sorted=True).data
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)
