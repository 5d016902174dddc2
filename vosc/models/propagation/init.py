"""``lstt_init="propagation"``: an S-LSTT stack that starts as label propagation over the encoder's features.

The reference initialises every LSTT weight with Xavier: at step 0 the attention logits of random projections
are nearly flat, and a short training run (minutes on a CPU) learns what the training videos look like rather
than how to match pixels across frames. vosc's own pretrained-encoder variants (``aost_lite0*``) can instead
start from what a frozen ImageNet encoder already does well (training-free label propagation,
:class:`vosc.evaluation.baselines.LabelPropagation`):

* ``encoder_projector``: orthogonal (a near-isometry of the encoder features into ``d_model``);
* self-attention and FFN outputs: zero (each block starts as the identity on its tokens);
* ``linear_QV``: ``Q = scale · x`` (the normed tokens: attention logits are scaled feature correlations,
  ``scale`` sets their sharpness), ``V = 0``;
* ``linear_ID_KV``: gates 0 (keys unscaled), ``ID_V = id_emb``: memory values are the identity embedding;
* long- and short-term attention projections: identity; short-term relative biases: zero.

A block's output is then its input plus the identity embeddings propagated from the memory by feature
similarity; the decoder learns to read them. Every weight stays trainable; only the starting point changes.
AOT's LSTT block (``linear_Q``/``linear_V``) is not covered.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vosc.config import ConfigError

LSTT_INITS = ("reference", "propagation")


def distinct_ids_init(conv: nn.Conv2d) -> None:
    """Zero the ID bank's bias.

    With the reference's initialisation (orthogonal weights at gain ``17^-2``, PyTorch's default bias) the
    bias is about 20 times the weights' response to a uniform region, so after AOST's LayerNorm every identity
    has nearly the same embedding (cosine ≈ 0.99): label propagation of the embeddings would carry no identity
    at the start. Without the bias the identities start nearly orthogonal; the weights are then rescaled so
    that a uniform region's response has unit standard deviation over channels (the LayerNorm's ``eps``
    would otherwise shrink the embeddings about threefold).
    """
    with torch.no_grad():
        if conv.bias is not None:
            conv.bias.zero_()
        response = conv.weight.sum(dim=(2, 3))  # (d, num_ids): a uniform region of each identity
        conv.weight.div_(response.std(dim=0).mean())


def identity_vectors(id_bank: nn.Module, num_ids: int) -> torch.Tensor:
    """``(num_ids, d_model)``: the embedding of a token that lies wholly inside one identity's region.

    The ID bank's patch conv (and AOST's LayerNorm) applied to a uniform 33×33 one-hot map of each identity;
    the centre token sees only that identity.
    """
    with torch.no_grad():
        one_hot = torch.eye(num_ids).view(num_ids, num_ids, 1, 1).expand(num_ids, num_ids, 33, 33)
        weight = next(id_bank.parameters())
        emb = id_bank(one_hot.to(weight))  # (num_ids, h*w, d)
        side = int(round(emb.shape[1] ** 0.5))
        return emb[:, (side // 2) * side + side // 2].clone()


def readout_init(readouts: Sequence[nn.Conv2d], id_bank: nn.Module, scale: float = 10.0) -> None:
    """Start each decoder ``readout`` (:class:`~vosc.models.decoder.fpn.FPNDecoder`) as the identity readout
    of what the first ``n'`` layers added to the tokens: logit ``k`` = ``scale · <r, e_k> / (2 n' d)``, with
    ``e_k`` the embedding of identity ``k`` (:func:`identity_vectors`) and ``d`` its width.

    With :func:`propagation_init` each layer adds the embeddings propagated from the long- and the short-term
    memory, about ``2 Σ_k p_k e_k`` (``e_k`` nearly orthogonal, ``|e_k|² = d``), so the logits start as
    ``scale · p_k``: the untrained model is label propagation at stride 16.

    Args:
        readouts: One 1×1 conv per depth ``n' = 1, 2, ...``.
        id_bank: The model's identity bank.
        scale: Logit gap between a fully propagated identity and an absent one.
    """
    emb = identity_vectors(id_bank, readouts[0].out_channels)
    d = emb.shape[1]
    with torch.no_grad():
        for depth, conv in enumerate(readouts, start=1):
            conv.weight.copy_((emb * (scale / (2 * depth * d))).view_as(conv.weight))
            if conv.bias is not None:
                conv.bias.zero_()
def _identity(linear: nn.Linear) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.eye(linear.out_features, linear.in_features))
        if linear.bias is not None:
            linear.bias.zero_()


def _zero(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()


def propagation_init(blocks: list[nn.Module], projector: nn.Conv2d, scale: float = 2.0) -> None:
    """Initialise S-LSTT ``blocks`` and the encoder ``projector`` as described in the module docstring.

    Raises:
        ConfigError: a block is not an S-LSTT block.
    """
    from vosc.models.propagation.s_lstt import SLSTTBlock

    with torch.no_grad():
        nn.init.orthogonal_(projector.weight)
        if projector.bias is not None:
            projector.bias.zero_()
    for block in blocks:
        if not isinstance(block, SLSTTBlock):
            raise ConfigError("model.lstt_init=propagation needs S-LSTT blocks (block: slstt), "
                              f"not {type(block).__name__}")
        d, heads = block.d_model, block.num_heads
        _zero(block.self_attn.projection)
        _zero(block.linear2)
        with torch.no_grad():
            block.linear_QV.weight.zero_()
            block.linear_QV.bias.zero_()
            block.linear_QV.weight[:d].copy_(scale * torch.eye(d))
            block.linear_ID_KV.weight.zero_()
            block.linear_ID_KV.bias.zero_()
            block.linear_ID_KV.weight[heads:].copy_(torch.eye(d))
            block.short_term_attn.relative_emb_k.weight.zero_()
            if block.short_term_attn.relative_emb_k.bias is not None:
                block.short_term_attn.relative_emb_k.bias.zero_()
            block.short_term_attn.relative_emb_v.zero_()
        _identity(block.long_term_attn.projection)
        _identity(block.short_term_attn.projection)


def check_lstt_init(name: str) -> str:
    """``name`` if it is one of :data:`LSTT_INITS`, else a :class:`ConfigError` naming ``model.lstt_init``."""
    if name not in LSTT_INITS:
        raise ConfigError(f"model.lstt_init={name!r}; valid choices: {list(LSTT_INITS)}")
    return name
