"""Aggregating per-frame feature maps over time.

All take x: [n, s, c, h, w] (s frames in temporal order) and return [n, c_out, h, w].
"""

from __future__ import annotations

import torch
from torch import nn


def temporal_max(x: torch.Tensor) -> torch.Tensor:
    """In x: [n, s, c, h, w]. Out [n, c, h, w]: the maximum over frames (order-free)."""
    return x.amax(dim=1)


class LocationLSTM(nn.Module):
    """One LSTM run over time at every spatial location, weights shared across locations.

    Each location's feature vector sequence ``x[:, :, :, i, j]`` is a sequence of ``s`` vectors of
    size ``c``; the output at that location is the LSTM's hidden state after the last frame.
    Equivalent to a ConvLSTM with 1×1 kernels.

    In  x: [n, s, c, h, w]
    Out    [n, hidden, h, w]
    """

    def __init__(self, in_channels: int, hidden: int):
        super().__init__()
        self.lstm = nn.LSTM(in_channels, hidden, batch_first=True)
        self.out_channels = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, s, c, h, w = x.shape
        sequences = x.permute(0, 3, 4, 1, 2).reshape(n * h * w, s, c)  # [n*h*w, s, c]
        outputs, _ = self.lstm(sequences)  # [n*h*w, s, hidden]
        last = outputs[:, -1]  # [n*h*w, hidden]
        return last.reshape(n, h, w, -1).permute(0, 3, 1, 2).contiguous()  # [n, hidden, h, w]


class ConvLSTM(nn.Module):
    """A ConvLSTM cell (k×k convolutional gates) run over time; the last hidden state.

    The input-to-gates convolution runs on all frames at once; only the hidden-to-gates
    convolution is applied step by step. The loop over frames is a Python loop, so an ONNX export
    of this variant is unrolled for the traced frame count.

    In  x: [n, s, c, h, w]
    Out    [n, hidden, h, w]
    """

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3):
        super().__init__()
        padding = kernel_size // 2
        self.input_gates = nn.Conv2d(in_channels, 4 * hidden, kernel_size, padding=padding)
        self.hidden_gates = nn.Conv2d(hidden, 4 * hidden, kernel_size, padding=padding, bias=False)
        self.hidden = hidden
        self.out_channels = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, s, c, h, w = x.shape
        from_input = self.input_gates(x.reshape(n * s, c, h, w)).reshape(
            n, s, 4 * self.hidden, h, w
        )
        state = x.new_zeros(n, self.hidden, h, w)
        cell = x.new_zeros(n, self.hidden, h, w)
        for t in range(s):
            gates = from_input[:, t] + self.hidden_gates(state)
            i, f, g, o = gates.chunk(4, dim=1)
            cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
            state = torch.sigmoid(o) * torch.tanh(cell)
        return state
