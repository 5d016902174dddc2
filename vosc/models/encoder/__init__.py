"""timm image encoders."""
