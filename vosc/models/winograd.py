"""Winograd convolution ``F(m×m, 3×3)`` for CPU inference of 3×3, stride-1 convolutions.

oneDNN runs PyTorch's CPU convolutions in direct form. For the wide 3×3 layers of STCN's decoder and encoders,
the Winograd minimal-filtering algorithm (Lavin & Gray, CVPR 2016) needs ``(m+2)²/m²`` multiplications per
output and input channel instead of 9: 2.25 for ``m = 4`` (4× fewer), 1.78 for ``m = 6``. Each output tile of
``m × m`` pixels is computed from an input tile of ``a × a`` pixels (``a = m + 2``)::

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A        (g: 3×3 kernel, d: a×a input tile)

Implementation (all ATen ops, any thread count): the input is read channels-last; for a band of tile rows the
``a²`` tile offsets are gathered into ``(a², P·C)``, transformed by one GEMM with ``Bᵀ ⊗ Bᵀ``, multiplied by
the pre-transformed weights ``(a², C, K)`` in one batched GEMM, and transformed back with ``Aᵀ ⊗ Aᵀ``. Bands
keep the working set in cache. The result is a channels-last ``(N, K, H, W)`` tensor.

Accuracy: the transforms are exact in float64 and mostly exact in float32 (entries are small rationals); the
float32 error of a 512-channel layer is ≈ 1.5× that of the direct convolution for ``m = 4`` (measured max
abs error vs float64 on unit-variance data: 5e-5 vs 3e-5) and ≈ 2.5× for ``m = 6``.

:class:`WinogradConv2d` is an ``nn.Conv2d`` (same parameters and state-dict keys) that takes this path only
where it applies and pays off: CPU, float32, no autograd through it, no autocast, not inside
``torch.compile`` (its graphs keep the plain convolution), 3×3 / stride 1 / padding 1
/ dilation 1 / groups 1, and both sides at least ``min_channels`` wide; everything else, training included,
is the plain convolution. :func:`use_winograd` converts a network's eligible convolutions in place.
"""

from __future__ import annotations

import math
import threading
from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["WinogradConv2d", "check_tile", "conv3x3_channels", "use_winograd", "winograd_conv3x3",
           "winograd_matrices", "winograd_weights"]

POINTS: dict[int, tuple[Fraction, ...]] = {
    2: (Fraction(0), Fraction(1), Fraction(-1)),
    4: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2)),
    6: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2), Fraction(1, 2), Fraction(-1, 2)),
}
"""Interpolation points of ``F(m, 3)`` (plus the point at infinity)."""

_WORKING_SET = 3_000_000  # floats of transformed input per band (≈ 12 MB: last-level cache)
_MIN_TILES = 128  # tiles per band at least, so that the batched GEMM stays efficient
_PROBE_STRIDE = 61  # every 61st weight value fingerprints the cached kernels


def _solve(rows: list[list[Fraction]], rhs: list[Fraction]) -> list[Fraction]:
    """Exact least-squares-free solve of a consistent linear system (Gauss–Jordan over the rationals)."""
    n = len(rows[0])
    mat = [r[:] + [b] for r, b in zip(rows, rhs, strict=True)]
    pivots, r = [], 0
    for c in range(n):
        p = next((i for i in range(r, len(mat)) if mat[i][c] != 0), None)
        if p is None:
            continue
        mat[r], mat[p] = mat[p], mat[r]
        mat[r] = [v / mat[r][c] for v in mat[r]]
        for i in range(len(mat)):
            if i != r and mat[i][c] != 0:
                f = mat[i][c]
                mat[i] = [a - f * b for a, b in zip(mat[i], mat[r], strict=True)]
        pivots.append(c)
        r += 1
    if any(all(v == 0 for v in row[:n]) and row[n] != 0 for row in mat):
        raise ArithmeticError("inconsistent Winograd system")
    x = [Fraction(0)] * n
    for i, c in enumerate(pivots):
        x[c] = mat[i][n]
    return x


def winograd_matrices(m: int, r: int = 3) -> tuple[Tensor, Tensor, Tensor]:
    """The ``F(m, r)`` transforms (Cook–Toom construction, exact over the rationals).

    ``Aᵀ`` and ``G`` are Vandermonde rows of the points (``G`` divided by ``Π (p_i − p_j)``, infinity last);
    ``Bᵀ`` solves ``Σ_k Aᵀ[i,k] G[k,j] Bᵀ[k,l] = [l = i + j]``, which makes ``Aᵀ[(G g) ⊙ (Bᵀ d)]`` the valid
    correlation of ``d`` (length ``m + r − 1``) with ``g`` (length ``r``).

    Returns:
        ``(AT (m, a), G (a, r), BT (a, a))`` in float64, ``a = m + r − 1``.
    """
    if m not in POINTS or r != 3:
        raise ValueError(f"Winograd F({m}, {r}) is not available: m must be one of {sorted(POINTS)} and r 3")
    pts, a = POINTS[m], m + r - 1

    def vander(n: int) -> list[list[Fraction]]:
        rows = [[p ** j for j in range(n)] for p in pts]
        return rows + [[Fraction(0)] * (n - 1) + [Fraction(1)]]

    scale = [Fraction(1)] * a
    for i, p in enumerate(pts):
        for j, q in enumerate(pts):
            if i != j:
                scale[i] *= p - q
    at = [list(col) for col in zip(*vander(m), strict=True)]
    g = [[v / scale[i] for v in row] for i, row in enumerate(vander(r))]
    rows, rhs = [], []
    for i in range(m):
        for j in range(r):
            for col in range(a):
                row = [Fraction(0)] * (a * a)
                for k in range(a):
                    row[k * a + col] = at[i][k] * g[k][j]
                rows.append(row)
                rhs.append(Fraction(int(col == i + j)))
    bt = _solve(rows, rhs)

    def t(x: list[list[Fraction]]) -> Tensor:
        return torch.tensor([[float(v) for v in row] for row in x], dtype=torch.float64)

    return t(at), t(g), t([bt[k * a:(k + 1) * a] for k in range(a)])


_KRON: dict[int, tuple[Tensor, Tensor, Tensor]] = {}


def _kron(m: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(Bᵀ⊗Bᵀ (a², a²), Aᵀ⊗Aᵀ (m², a²)`` in float32, ``G`` float64)``, cached."""
    if m not in _KRON:
        at, g, bt = winograd_matrices(m)
        _KRON[m] = (torch.kron(bt, bt).float(), torch.kron(at, at).float(), g)
    return _KRON[m]


def winograd_weights(weight: Tensor, m: int) -> Tensor:
    """Transform 3×3 kernels ``(K, C, 3, 3)`` to ``(a², C, K)`` (``G g Gᵀ`` per kernel, in float64)."""
    g = _kron(m)[2].to(weight.device)
    a = m + 2
    u = torch.einsum("ia,kcab,jb->ijck", g, weight.detach().double(), g)
    return u.reshape(a * a, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous()


class _Workspace(threading.local):
    """Per-thread scratch buffers, reused across calls: a fresh large CPU tensor costs a page fault per
    4 KiB on first touch, which made the transforms memory-bound (measured: a 12 MB GEMM output 9.1 ms
    fresh vs 3.5 ms reused)."""

    def __init__(self) -> None:
        self.buffers: dict[tuple[str, torch.dtype, torch.device], Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        key, numel = (name, like.dtype, like.device), math.prod(shape)
        buf = self.buffers.get(key)
        if buf is None or buf.numel() < numel:
            with torch.inference_mode(False):  # a normal tensor: writable in and outside inference mode
                buf = torch.empty(numel, dtype=like.dtype, device=like.device)
            self.buffers[key] = buf
        return buf[:numel].view(shape)


_WS = _Workspace()


def _padded_nhwc(x: Tensor, rows: int, cols: int, relu: bool) -> Tensor:
    """``x (N, C, H, W)`` (or ``relu(x)``) as a zero-padded channels-last ``(N, rows, cols, C)`` workspace
    (one zero row and column before the image, the rest after)."""
    n, c, h, w = x.shape
    xp = _WS.get("pad", (n, rows, cols, c), x)
    xp[:, 0].zero_()
    xp[:, h + 1:].zero_()
    xp[:, 1:h + 1, 0].zero_()
    xp[:, 1:h + 1, w + 1:].zero_()
    if relu:
        torch.clamp_min(x.permute(0, 2, 3, 1), 0, out=xp[:, 1:h + 1, 1:w + 1])
    else:
        xp[:, 1:h + 1, 1:w + 1].copy_(x.permute(0, 2, 3, 1))
    return xp


@torch.no_grad()
def winograd_conv3x3(x: Tensor, u: Tensor, bias: Tensor | None, m: int, relu_input: bool = False,
                     residual: Tensor | None = None) -> Tensor:
    """3×3 convolution, stride 1, zero padding 1, by ``F(m×m, 3×3)``: ``conv(x) + bias (+ residual)``.

    Inference only: it runs without autograd (:class:`WinogradConv2d` takes the plain convolution whenever
    a gradient is needed).

    Args:
        x: ``(N, C, H, W)`` input (fastest when channels-last).
        u: ``(a², C, K)`` transformed kernels (:func:`winograd_weights`; a channel slice of them is fine).
        bias: ``(K,)`` or ``None``.
        m: Output tile size (2, 4 or 6).
        relu_input: Convolve ``relu(x)`` (fused into the padding copy).
        residual: ``(N, K, H, W)`` added to the result (in place, no extra tensor).

    Returns:
        ``(N, K, H, W)``, channels-last.
    """
    a = m + 2
    n, c, h, w = x.shape
    k = u.shape[2]
    if u.shape[:2] != (a * a, c):
        raise ValueError(f"transformed weights {tuple(u.shape)} do not fit F({m},3) on {c} channels")
    bt2, at2, _ = _kron(m)
    bt2, at2 = bt2.to(x.device, x.dtype), at2.to(x.device, x.dtype)
    th, tw = -(-h // m), -(-w // m)
    xp = _padded_nhwc(x, th * m + 2, tw * m + 2, relu_input)
    out = x.new_empty(n, th * m, tw * m, k)
    band = min(th, max(-(-_MIN_TILES // (n * tw)), _WORKING_SET // (a * a * n * tw * max(c, k)), 1))
    for r0 in range(0, th, band):
        rows = min(band, th - r0)
        p = n * rows * tw
        tiles = xp[:, r0 * m: (r0 + rows) * m + 2].unfold(1, a, m).unfold(2, a, m)  # (n, rows, tw, c, a, a)
        d = _WS.get("tiles", (a, a, n, rows, tw, c), x)
        d.copy_(tiles.permute(4, 5, 0, 1, 2, 3))
        v = torch.mm(bt2, d.view(a * a, -1), out=_WS.get("v", (a * a, p * c), x))
        prod = torch.bmm(v.view(a * a, p, c), u, out=_WS.get("prod", (a * a, p, k), x))
        y = torch.mm(at2, prod.view(a * a, -1), out=_WS.get("y", (m * m, p * k), x))
        dst = out[:, r0 * m:(r0 + rows) * m].view(n, rows, m, tw, m, k)
        src = y.view(m, m, n, rows, tw, k).permute(2, 3, 0, 4, 1, 5)
        if bias is None:
            dst.copy_(src)
        else:
            torch.add(src, bias, out=dst)
    if (th * m, tw * m) != (h, w):
        out = out[:, :h, :w].contiguous()
    if residual is not None:
        out += residual.permute(0, 2, 3, 1)
    return out.permute(0, 3, 1, 2)


def _applies(x: Tensor, weight: Tensor) -> bool:
    """The Winograd path is exact enough and faster here (see the module docstring)."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4 and x.shape[0] > 0
            and not torch.compiler.is_compiling()  # compiled graphs: the compiler's own convolution
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and not torch.is_autocast_enabled("cpu") and min(x.shape[-2:]) >= 4)


def check_tile(tile: int | None, name: str = "tile") -> int | None:
    """``tile`` if a Winograd tile (2, 4, 6) or ``None``; else a ``ValueError`` that names ``name``."""
    if tile is not None and (isinstance(tile, bool) or tile not in POINTS):
        raise ValueError(f"{name} must be one of {sorted(POINTS)} (Winograd F(m×m, 3×3)) or None (direct "
                         f"convolutions), got {tile!r}")
    return tile


class WinogradConv2d(nn.Conv2d):
    """A 3×3 ``nn.Conv2d`` (stride 1, padding 1) that runs :func:`winograd_conv3x3` at CPU inference.

    The transformed kernels (``(m+2)²/9`` times the weight's memory: 4× for ``m = 4``) are cached and
    recomputed when the weight or the tile changes (see :meth:`transformed`); training forwards drop them.

    Args:
        in_channels: ``C``.
        out_channels: ``K``.
        bias: Add a learnable bias.
        tile: Output tile ``m`` of ``F(m×m, 3×3)`` (2, 4, 6); ``None``: always the plain convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, tile: int | None = 4) -> None:
        super().__init__(in_channels, out_channels, kernel_size=3, padding=1, bias=bias)
        self.tile = check_tile(tile)
        self._cache: tuple[tuple[int, int, int], Tensor, Tensor] | None = None

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, tile: int | None = 4) -> WinogradConv2d:
        """A ``WinogradConv2d`` sharing ``conv``'s parameters (the same ``Parameter`` objects)."""
        new = cls(conv.in_channels, conv.out_channels, bias=conv.bias is not None, tile=tile)
        new.weight, new.bias = conv.weight, conv.bias
        new.train(conv.training)
        return new

    def transformed(self) -> Tensor:
        """``(a², C, K)`` transformed kernels (cached; a channel range is a view of them).

        The cache is checked on every call: the weight's version counter and storage (in-place updates,
        ``load_state_dict``, ``.to()``), the tile, and a probe of every 61st weight value, which catches
        writes through ``.data`` that bypass the version counter (Lightning's EMA swap does that).
        """
        w = self.weight.detach()
        tile = int(self.tile or 4)
        stamp = (w._version, w.data_ptr(), tile)
        flat = w.reshape(-1) if w.is_contiguous() else w.permute(0, 2, 3, 1).reshape(-1)
        probe = flat[::_PROBE_STRIDE]
        hit = self._cache
        if hit is None or hit[0] != stamp or not torch.equal(hit[1], probe):
            with torch.inference_mode(False):  # normal tensors, usable in and outside inference mode
                hit = (stamp, probe.clone(), winograd_weights(w, tile))
            self._cache = hit
        return hit[2]

    def drop_cache(self) -> None:
        """Free the transformed kernels (done whenever the layer runs with autograd: training updates the
        weights, and the memory is better spent there)."""
        self._cache = None

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` → ``(N, K, H, W)`` (channels-last on the Winograd path)."""
        return conv3x3_channels(self, x)


def conv3x3_channels(conv: nn.Conv2d, x: Tensor, start: int = 0, stop: int | None = None, bias: bool = True,
                     relu_input: bool = False, residual: Tensor | None = None) -> Tensor:
    """``conv(relu(x) if relu_input else x) (+ residual)``, the convolution restricted to its input channels
    ``start:stop`` (``x`` holds just those), with or without its bias (the split form of a convolution over
    concatenated inputs). Winograd where it applies, with the ReLU and the residual fused into its copies;
    otherwise the plain ops, in the same order (``(N, C, H, W)`` → ``(N, K, H, W)``)."""
    stop = conv.in_channels if stop is None else stop
    b = conv.bias if bias else None
    if isinstance(conv, WinogradConv2d) and conv.tile is not None and _applies(x, conv.weight):
        if residual is not None and (residual.requires_grad and torch.is_grad_enabled()):
            return winograd_conv3x3(x, conv.transformed()[:, start:stop], b, conv.tile, relu_input) + residual
        return winograd_conv3x3(x, conv.transformed()[:, start:stop], b, conv.tile, relu_input, residual)
    if isinstance(conv, WinogradConv2d) and torch.is_grad_enabled() and conv.weight.requires_grad:
        conv.drop_cache()
    w = conv.weight if (start, stop) == (0, conv.in_channels) else conv.weight[:, start:stop]
    y = F.conv2d(F.relu(x) if relu_input else x, w, b, conv.stride, conv.padding, conv.dilation, conv.groups)
    return y if residual is None else y + residual


def _eligible(conv: nn.Module, min_channels: int) -> bool:
    c: Any = conv
    return (type(conv) is nn.Conv2d and c.kernel_size == (3, 3) and c.stride == (1, 1)
            and c.padding == (1, 1) and c.dilation == (1, 1) and c.groups == 1
            and c.padding_mode == "zeros" and min(c.in_channels, c.out_channels) >= min_channels)


def use_winograd(module: nn.Module, tile: int | None = 4, min_channels: int = 32) -> int:
    """Make every eligible 3×3 convolution in ``module`` a :class:`WinogradConv2d` (in place, parameters
    shared, state-dict keys unchanged), or set the tile of those that already are.

    Args:
        module: Any network.
        tile: ``F(m×m, 3×3)`` output tile; ``None``: plain convolutions.
        min_channels: Skip narrower layers (below ≈ 32 channels the transforms cost more than they save).

    Returns:
        The number of convolutions now on the Winograd path.
    """
    check_tile(tile)
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, WinogradConv2d):
            child.tile = tile
            count += tile is not None
        elif _eligible(child, min_channels):
            setattr(module, name, WinogradConv2d.from_conv(child, tile))  # type: ignore[arg-type]
            count += tile is not None
        else:
            count += use_winograd(child, tile, min_channels)
    return count
