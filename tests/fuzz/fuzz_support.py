"""What the Hypothesis fuzz tests share: the budget and nasty input fragments.

The budget is small enough for CI (``KQUEUE_FUZZ_EXAMPLES``, default 200 examples per test);
raise it to fuzz for longer on a developer machine, e.g. ``KQUEUE_FUZZ_EXAMPLES=20000``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: Examples per property; no deadline (a busy 2-core CI box is slow and uneven), no database
#: (a test run leaves nothing behind; failures are kept as explicit regression tests instead).
FUZZ = settings(
    max_examples=int(os.environ.get("KQUEUE_FUZZ_EXAMPLES", "200")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: Text that has broken parsers before: special floats, huge numbers, NA spellings, quotes.
NASTY_WORDS = [
    "",
    " ",
    "0",
    "-1",
    "-0.0",
    "1e309",
    "-1e309",
    "1e-400",
    "inf",
    "-inf",
    "Infinity",
    "NaN",
    "nan",
    "NA",
    "N/A",
    "None",
    "null",
    "true",
    "0x10",
    "1_000",
    " 1",
    "1" * 4400,
    "9" * 400,
    "\x00",
    '"',
    "'",
    ",",
    "\n",
    "\r",
    "\r\n",
    "\ufeff",
    "\\",
    "[",
    "{",
    "inline",
    "pool",
    "isolated",
    "ok",
    "os.system",
    "__import__('os').system('true')",
]

#: A word from the list above or arbitrary text.
nasty_text = st.one_of(st.sampled_from(NASTY_WORDS), st.text(max_size=20))

#: Bytes that mimic other formats: pickles, compressed streams, byte-order marks.
MAGIC_PREFIXES = [
    b"",
    b"\x80\x04\x95",  # pickle protocol 4
    b"\x1f\x8b\x08",  # gzip
    b"BZh9",  # bzip2
    b"\xfd7zXZ\x00",  # xz
    b"PK\x03\x04",  # zip
    b"(\xb5/\xfd",  # zstandard
    b"PAR1",  # parquet
    b"\xef\xbb\xbf",  # UTF-8 BOM
    b"\xff\xfe",  # UTF-16 LE BOM
]

#: Arbitrary bytes, sometimes behind another format's magic number.
nasty_bytes = st.builds(
    lambda prefix, rest: prefix + rest, st.sampled_from(MAGIC_PREFIXES), st.binary(max_size=300)
)
