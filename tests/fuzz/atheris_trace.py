"""Coverage-guided fuzzing of the trace reader (``kqueue.policy.trace.read_trace``) with atheris.

    PYTHONPATH=. python tests/fuzz/atheris_trace.py -atheris_runs=20000 [corpus_dir]

The first byte of an input picks the file's suffix (plain or compressed CSV), the rest is its
content: it must read as a valid trace or raise ``TraceError`` naming the file.
"""

from __future__ import annotations

import gzip

import atheris

with atheris.instrument_imports(include=["kqueue"]):
    from contracts import assert_reads_or_rejects

    from kqueue.policy.trace import COLUMNS

from atheris_main import fuzz, scratch_file

SUFFIXES = [".csv", ".csv.gz", ".bz2", ".xz", ".zip", ".tar", ".txt"]
HEADER = ",".join(COLUMNS) + "\r\n"
ROW = "j1,default,tasks.mail,inline,0.5,0.6,0.9,0.1,0.3,0.2,64.0,ok,1,host:1,0.25\r\n"
SEEDS = [
    b"\x00" + (HEADER + ROW + ROW.replace("j1", "j2")).encode(),
    b'\x00submitted_at,job_class,duration_s\n0,a,1\n\n1.5,"b,""c""",2\n',
    b"\x01" + gzip.compress((HEADER + ROW).encode()),
    b"\x00submitted_at,job_class,duration_s,tier,status\n0,a,-1,pool,ok\n1,b,2,slow,ok\n",
]
TOKENS = [
    *(c.encode() for c in COLUMNS),
    *(t.encode() for t in ("inline", "pool", "isolated", "ok", "failed", "timeout", "memory")),
    *(t.encode() for t in ("NA", "nan", "inf", "-1", "1e309", "9" * 30, '"', '""', ",,")),
    b"\r\n",
    b"\r",
    b"\x1f\x8b\x08",
    b"PK\x03\x04",
]


def one_input(data: bytes) -> None:
    suffix = SUFFIXES[data[0] % len(SUFFIXES)] if data else ".csv"
    path = scratch_file("trace", suffix)
    path.write_bytes(data[1:])
    try:
        assert_reads_or_rejects(path)
    finally:
        path.unlink()


if __name__ == "__main__":
    fuzz("trace", one_input, SEEDS, TOKENS)
