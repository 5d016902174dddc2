"""Import of official AOT/AOST checkpoints."""
