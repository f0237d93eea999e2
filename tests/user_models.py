"""Hand-built user models (importable, so pickled modules load in the tests)."""

from __future__ import annotations

import torch
from torch import nn


class SeqFirstLSTM(nn.Module):
    """nn.LSTM in (T, B, C) layout, 2 layers, the head on the last step only."""

    def __init__(self, inputs: int, hidden: int, classes: int):
        super().__init__()
        self.lstm = nn.LSTM(inputs, hidden, num_layers=2)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.fc(self.drop(out[-1]))


class BatchFirstGRU(nn.Module):
    """nn.GRU in (B, T, C) layout, the head on every step."""

    def __init__(self, inputs: int, hidden: int, classes: int):
        super().__init__()
        self.gru = nn.GRU(inputs, hidden, batch_first=True)
        self.classifier = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.gru(x)[0])


class WithActivation(nn.Module):
    """Not supported: a ReLU between the RNN and the head."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(6, 8, batch_first=True)
        self.act = nn.ReLU()
        self.fc = nn.Linear(8, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.gru(x)[0]))


class BatchFirstRNN(nn.Module):
    """nn.RNN (Elman) in (B, T, C) layout, 2 layers, with ``nonlinearity`` (tanh is PyTorch's default)."""

    def __init__(self, inputs: int, hidden: int, classes: int, nonlinearity: str = "tanh"):
        super().__init__()
        self.rnn = nn.RNN(inputs, hidden, num_layers=2, batch_first=True, nonlinearity=nonlinearity)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.rnn(x)[0])
