"""The fast local attention equals a straightforward pad+unfold implementation (the reference's
formulation), values and gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vosc.models.propagation.attention import LocalAttention, band_index


def unfold_local_attention(m: LocalAttention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                           h: int, w: int) -> torch.Tensor:
    """Local attention written with F.unfold over zero-padded keys/values (slow, obvious)."""
    b, length, c = q.shape
    nh, hd, win, r = m.num_head, c // m.num_head, m.window, m.max_dis
    q2 = q.transpose(1, 2).reshape(b, c, h, w)
    rel = m.relative_emb_k(q2).view(b, nh, win, length)
    def unfold(x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2).reshape(b, -1, h, w)
        return F.unfold(F.pad(x, (r, r, r, r)), kernel_size=2 * r + 1).view(b, nh, hd, win, length)
    ku, vu = unfold(k), unfold(v)
    inside = F.unfold(F.pad(torch.ones(1, 1, h, w), (r, r, r, r)),
                      kernel_size=2 * r + 1).view(1, 1, win, length)
    qh = q2.view(b, nh, hd, 1, length) / hd**0.5
    logits = (qh * ku).sum(2) + rel - (1 - inside) * 1e8
    attn = logits.softmax(dim=2)  # (b, nh, win, L)
    out = (attn.unsqueeze(2) * (vu + m.relative_emb_v.view(1, nh, hd, win, 1))).sum(3)  # (b, nh, hd, L)
    return m.projection(out.reshape(b, c, length).transpose(1, 2))


def test_fast_local_attention_matches_unfold() -> None:
    torch.manual_seed(0)
    m = LocalAttention(64, num_head=4, max_dis=3)
    torch.nn.init.normal_(m.relative_emb_v, std=0.5)
    for h, w in ((6, 9), (2, 3), (9, 4)):  # windows larger than the frame in one or both directions
        q, k, v = (torch.randn(2, h * w, 64, requires_grad=True) for _ in range(3))
        fast = m(q, k, v, (h, w))
        ref = unfold_local_attention(m, q, k, v, h, w)
        assert fast.shape == (2, h * w, 64)
        torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
        inputs = (q, k, v, m.relative_emb_v, m.relative_emb_k.weight)
        g_fast = torch.autograd.grad(fast.square().sum(), inputs)
        g_ref = torch.autograd.grad(ref.square().sum(), inputs)
        for a, b in zip(g_fast, g_ref, strict=False):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_band_index_marks_outside_keys() -> None:
    index, outside = band_index(3, 4, 1, torch.device("cpu"))
    assert index.shape == (12, 9)
    # query (0, 0): slot 4 is the query itself = middle row of its band, column 0
    assert index[0, 4] == 4 and bool(outside[0, 0]) and int(outside[0].sum()) == 5
    # query (1, 2): slot (ky=2, kx=2) is key (2, 3) = band row 2, column 3; whole window inside
    assert index[6, 8] == 11 and not bool(outside[6].any())


def test_reference_style_unfold_path_matches_fast_path() -> None:
    torch.manual_seed(1)
    fast = LocalAttention(64, num_head=4, max_dis=3)
    torch.nn.init.normal_(fast.relative_emb_v, std=0.5)
    slow = LocalAttention(64, num_head=4, max_dis=3, impl="unfold")
    slow.load_state_dict(fast.state_dict())
    q, k, v = (torch.randn(1, 5 * 7, 64) for _ in range(3))
    torch.testing.assert_close(fast(q, k, v, (5, 7)), slow(q, k, v, (5, 7)), atol=1e-5, rtol=1e-5)
