"""Compact JSON text, written by Python's C encoder made once rather than once a call.

`json.dumps` with any setting of its own (separators, sort_keys, default) makes a
`JSONEncoder`, and the C encoder inside it, on every call: a third of the cost of encoding a
small list, on paths that encode many (an audited response's events, a batch's fingerprints).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def compact_json(
    *,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
    ensure_ascii: bool = False,
) -> Callable[[Any], str]:
    """The text `json.dumps(value, separators=(",", ":"), sort_keys=..., default=...,
    ensure_ascii=...)` writes, character for character, by an encoder made here once."""
    make: Callable[..., Any] | None = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator: slower, the same text
        encoder = json.JSONEncoder(
            separators=(",", ":"), sort_keys=sort_keys, default=default, ensure_ascii=ensure_ascii
        )
        return encoder.encode
    strings = (
        json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    )
    # Positional, as the C function takes them: markers (None: no check for cycles, which
    # plain records and dataclasses cannot have), default (`JSONEncoder`'s own refusal if
    # none), string encoder, indent, key and item separators, sort_keys, skipkeys, allow_nan.
    refuse = json.JSONEncoder().default
    encode = make(None, default or refuse, strings, None, ":", ",", sort_keys, False, True)  # noqa: FBT003
    return lambda value: "".join(encode(value, 0))
