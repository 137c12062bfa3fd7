"""Every registered model traces (``torch.jit.trace``) at one size and runs at another.

Two cases. The export contract: the Predictor pads every tile to a multiple of the model's
``size_divisor`` before the model sees it, so a trace made at one divisible size must give the
eager output at another divisible size. And odd sizes: a trace made at a size the model pads
inside must run at another size that it pads. (Tracing records the padding arithmetic but not
the ``if`` that skips padding, so a trace made at a divisible size cannot take odd sizes.)
"""

import warnings

import pytest
import torch

import crackseg

ALL = crackseg.list_models()


def _trace_and_compare(name: str, traced_hw: tuple[int, int], run_hw: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = crackseg.create_model(name).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarning, and trace's deprecation notice
        traced = torch.jit.trace(model, torch.randn(1, 3, *traced_hw), check_trace=False)
        x = torch.randn(1, 3, *run_hw)
        eager, out = model(x), traced(x)
    assert out.shape == (1, 1, *run_hw)
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_trace_at_one_divisible_size_runs_at_another(name):
    d = max(int(getattr(crackseg.create_model(name), "size_divisor", 32)), 32)
    _trace_and_compare(name, (2 * d, 3 * d), (3 * d, 2 * d))


@pytest.mark.parametrize("name", ALL)
def test_trace_at_one_odd_size_runs_at_another(name):
    _trace_and_compare(name, (97, 75), (61, 131))
