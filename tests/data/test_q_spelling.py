"""``codec.q`` spellings that cannot mean anything are named as such (issue 26 item 9)."""

from __future__ import annotations

import pytest

from vosc.codecs import build_codec
from vosc.data.compressed_dataset import CompressionSpec
from vosc.types import OperatingPoint


def test_a_reversed_range_is_an_empty_range_not_a_missing_q() -> None:
    with pytest.raises(ValueError, match=r"q='47-27' is an empty range \(47 > 27\); write '27-47'"):
        OperatingPoint.parse_q("47-27")
    with pytest.raises(ValueError, match=r"empty range"):
        CompressionSpec(build_codec("x265"), q="47-27")
    with pytest.raises(ValueError, match=r"empty range"):
        OperatingPoint.parse_q({"low": 40, "high": 30})
    assert OperatingPoint.parse_q("27-29") == [27, 28, 29]
    assert OperatingPoint.parse_q("30-30") == [30]
