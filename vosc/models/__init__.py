"""Pure nn.Modules of vosc: encoders, propagation (LSTT / S-LSTT), decoders, the VOS model, the enhancer."""
