"""FPN decoders."""
