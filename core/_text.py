"""Text from outside, made safe once, where it enters.

Worker errors and tracebacks, worker log lines and trigger payloads can hold anything:
lone surrogates (an undecodable file name through `os.fsdecode` gives `\udce9` for the
byte 0xE9) that no UTF-8 encoder accepts, and control characters that a terminal would
obey. Each such character is replaced by its escape, the same way for the store, the
event log, HTTP and the dashboard: a surrogate that stands for an undecodable byte reads
`\\xe9` (the byte), any other lone surrogate `\\ud800`, a control character `\\x1b`.
Newlines and tabs stay: tracebacks and multi-line messages keep their shape.
"""

from __future__ import annotations

import re
from typing import Any

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # surrogateescape: the undecodable byte itself
    if code >= 0xD800:
        return f"\\u{code:04x}"
    return f"\\x{code:02x}"


def safe_text(text: str) -> str:
    """`text` with lone surrogates and control characters (but newline and tab) escaped."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escape, text)


def safe_json(value: Any) -> Any:
    """A JSON value with every string in it (keys included) made safe by `safe_text`."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_text(k) if isinstance(k, str) else k: safe_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe_json(v) for v in value]
    return value
