"""STCN (Space-Time Correspondence Networks, Cheng et al. 2021) as pure ``nn.Module``s."""

from vosc.models.stcn.network import STCN, KeyFeatures

__all__ = ["STCN", "KeyFeatures"]
