"""Coloured (power-law) Gaussian noise along time, for iCEM (Pinneri et al. 2020).

A sequence of H samples whose power spectrum falls as ``1 / f**beta``: ``beta = 0``
is white noise, ``beta = 2`` brown (random-walk-like) noise, smooth in time. The
sampler is the FFT method of Timmer and Koenig (1995), as the ``colorednoise``
package iCEM uses: draw each frequency's complex amplitude as a Gaussian scaled by
``f**(-beta / 2)``, then take the inverse real FFT.

For frequencies ``f_k = k / H`` (``k = 0 .. H // 2``) the amplitude is
``s_k = max(f_k, 1 / H) ** (-beta / 2)`` (the zero frequency takes the lowest
nonzero one's). Frequency k's coefficient is ``s_k (a_k + i b_k)`` with standard
normal ``a_k, b_k``; the zero frequency (and the Nyquist frequency ``H / 2`` when H
is even) is real, ``sqrt(2) s_k a_k``, so that every coefficient has mean square
``2 s_k**2``. The sequence is the inverse real FFT divided by ``sigma``, the root of
its expected mean square, so every entry has variance 1 (the process is stationary:
a circulant Gaussian).

Closed form for tests: the real FFT of a sample has ``E |X_k|**2 = 2 s_k**2 / sigma**2``,
``sigma**2 = (2 / H**2) * sum_k w_k s_k**2`` with ``w_k = 1`` at the zero and Nyquist
frequencies and 2 elsewhere (Parseval).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["colored_noise", "expected_periodogram", "spectrum_amplitudes"]


def spectrum_amplitudes(beta: float, horizon: int) -> Tensor:
    """``[H // 2 + 1]`` float64 amplitudes ``s_k`` of frequencies ``k / H``."""
    if horizon < 1:
        raise ValueError(f"colored noise: horizon must be >= 1, got {horizon}")
    freqs = torch.fft.rfftfreq(horizon, dtype=torch.float64)
    return freqs.clamp(min=1.0 / horizon) ** (-beta / 2.0)


def _weights(horizon: int) -> Tensor:
    """``[H // 2 + 1]`` Parseval weights: 1 at the real (zero, Nyquist) frequencies, else 2."""
    weights = torch.full((horizon // 2 + 1,), 2.0, dtype=torch.float64)
    weights[0] = 1.0
    if horizon % 2 == 0:
        weights[-1] = 1.0
    return weights


def _sigma(beta: float, horizon: int) -> float:
    amplitudes = spectrum_amplitudes(beta, horizon)
    return math.sqrt(2.0 * float((_weights(horizon) * amplitudes**2).sum()) / horizon**2)


def expected_periodogram(beta: float, horizon: int) -> Tensor:
    """``[H // 2 + 1]`` float64 ``E |rfft(x)_k|**2`` of a sample x of :func:`colored_noise`."""
    amplitudes = spectrum_amplitudes(beta, horizon)
    return 2.0 * amplitudes**2 / _sigma(beta, horizon) ** 2


def colored_noise(
    beta: float,
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """``[*shape]`` float32 unit-variance Gaussian noise with spectrum ``1 / f**beta``
    along the last dimension (time, H = ``shape[-1]``); rows are independent."""
    if beta < 0:
        raise ValueError(f"colored noise: beta must be >= 0, got {beta}")
    *rows, horizon = shape
    amplitudes = spectrum_amplitudes(beta, horizon).to(device, torch.float32)
    num_freqs = amplitudes.shape[0]
    real = torch.randn((*rows, num_freqs), generator=generator, device=device)
    imag = torch.randn((*rows, num_freqs), generator=generator, device=device)
    # The zero frequency (and Nyquist, for even H) is real; sqrt(2) keeps its power.
    real_only = torch.zeros(num_freqs, dtype=torch.bool, device=device)
    real_only[0] = True
    if horizon % 2 == 0:
        real_only[-1] = True
    real = torch.where(real_only, real * math.sqrt(2.0), real)
    imag = torch.where(real_only, 0.0, imag)
    spectrum = torch.complex(real * amplitudes, imag * amplitudes)
    return torch.fft.irfft(spectrum, n=horizon) / _sigma(beta, horizon)
