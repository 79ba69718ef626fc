"""Coverage-guided fuzzing of the message decoder (``kqueue.job.decode_message``) with atheris.

    PYTHONPATH=. python tests/fuzz/atheris_message.py -atheris_runs=100000 [corpus_dir]

Each input is a broker message body: it must decode to a job call or raise ``PayloadError``.
"""

from __future__ import annotations

import pickle

import atheris

with atheris.instrument_imports(include=["kqueue"]):
    from contracts import assert_decodes_or_rejects

    from kqueue.job import encode_message

from atheris_main import fuzz

SEEDS = [
    encode_message("tasks.send_mail", ("a@b.c", 3, [1.5, None]), {"retry": True}, 1.7e9),
    b'{"v":1,"name":"os.system","args":["true"],"submitted_at":0}',
    b'{"v":1,"name":"j","args":[[[[]]]],"kwargs":{"k":{"x":1e308}},"submitted_at":-0.0}',
    pickle.dumps(("os.system", ("true",))),
]
TOKENS = [
    *(f'"{key}":'.encode() for key in ("v", "name", "args", "kwargs", "submitted_at")),
    *(bytes([c]) for c in b"{}[],:"),
    *(t.encode() for t in ("NaN", "-Infinity", "true", "null", "1e999", "\\ud800", "9" * 30)),
    b"\xef\xbb\xbf",
    b"\x00\x00\x00",
]


def one_input(data: bytes) -> None:
    assert_decodes_or_rejects(data)


if __name__ == "__main__":
    fuzz("message", one_input, SEEDS, TOKENS)
