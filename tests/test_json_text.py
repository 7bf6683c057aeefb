"""`compact_json` writes what `json.dumps` writes with the same settings, to the character."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from hub.json_text import compact_json

VALUES = [
    {"b": [1, 2.5, None, True], "a": {"z": "Synthétique ☃", "y": 'quoted " \\ \n\t'}},
    ["\u2028", "\x00", "", -0.0, 1e300, 10**30],
    {"when": dt.datetime(2026, 1, 31, 9, tzinfo=dt.UTC), "day": dt.date(2015, 3, 4)},
]


@pytest.mark.parametrize("ensure_ascii", [False, True])
@pytest.mark.parametrize("sort_keys", [False, True])
def test_the_text_is_json_dumps_text(*, sort_keys: bool, ensure_ascii: bool) -> None:
    encode = compact_json(sort_keys=sort_keys, default=str, ensure_ascii=ensure_ascii)
    for value in VALUES:
        expected = json.dumps(
            value,
            sort_keys=sort_keys,
            default=str,
            ensure_ascii=ensure_ascii,
            separators=(",", ":"),
        )
        assert encode(value) == expected


def test_a_value_json_cannot_write_is_refused_as_json_dumps_refuses_it() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        compact_json()({"when": dt.date(2026, 1, 31)})
