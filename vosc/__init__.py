"""vosc: semi-supervised video object segmentation (AOT/AOST) on compressed video."""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
