"""Network blocks (torch modules); attribute names are the state_dict keys the Rust loader reads."""

from .hourglass import Bottleneck, Hourglass, HourglassNet, make_residual

__all__ = ["Bottleneck", "Hourglass", "HourglassNet", "make_residual"]
