"""Identity bank, position encoding, attention and (S-)LSTT blocks."""
