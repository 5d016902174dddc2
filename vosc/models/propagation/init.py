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

import torch
from torch import nn

from vosc.config import ConfigError

LSTT_INITS = ("reference", "propagation")


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
