"""The exponential moving average of the weights against the formula applied by hand, and the swap."""

import pytest
import torch
from torch import nn

from aam.training.averaging import WeightAverage


def test_average_follows_the_ema_formula_and_swaps_back():
    model = nn.Linear(3, 2)
    start = [p.detach().clone() for p in model.parameters()]
    average = WeightAverage(model, decay=0.75)
    expected = [s.clone() for s in start]
    for step in range(3):  # stand-in optimizer steps: move every weight by a known amount
        with torch.no_grad():
            for p in model.parameters():
                p.add_(step + 1.0)
        average.update()
        expected = [0.75 * e + 0.25 * p.detach() for e, p in zip(expected, model.parameters())]
    trained = [p.detach().clone() for p in model.parameters()]
    for got, want in zip(average.state_dict(), expected):
        torch.testing.assert_close(got, want)
    # steps of +1, +2, +3 put the weights at start + 1, + 3, + 6; the average is start + 0.25 (6 + 0.75 x 3
    # + 0.75^2 x 1) = start + 2.203125
    torch.testing.assert_close(average.state_dict()[0], start[0] + 2.203125)
    average.swap()
    for p, want in zip(model.parameters(), expected):
        torch.testing.assert_close(p.detach(), want)
    average.swap()
    for p, want in zip(model.parameters(), trained):
        assert torch.equal(p.detach(), want)


def test_saved_average_loads_into_a_fresh_one():
    model = nn.Linear(2, 2)
    average = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.weight.mul_(3.0)
    average.update()
    other = WeightAverage(nn.Linear(2, 2), decay=0.5)
    other.load_state_dict(average.state_dict())
    for a, b in zip(other.state_dict(), average.state_dict()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError):
        other.load_state_dict(average.state_dict()[:1])
