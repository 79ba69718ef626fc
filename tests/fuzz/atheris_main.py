"""Running one atheris (libFuzzer) harness: seed corpus, dictionary, scratch files, flags.

A harness module defines ``SEEDS`` (inputs to start from) and ``TOKENS`` (words of its format for
libFuzzer's dictionary: the JSON, CSV and TOML parsers underneath are C code or uninstrumented,
so coverage alone cannot steer mutations towards their keywords) and calls ``fuzz(name,
one_input, SEEDS, TOKENS)``. Without a corpus directory on the command line, the seeds go to
``$TMPDIR/kqueue-fuzz-<name>/corpus``, which libFuzzer also grows with the inputs it finds
interesting (reused, not piled up, run after run). libFuzzer's own flags pass through
(``-atheris_runs=N``, ``-max_total_time=S``, ``-timeout=S``, ``-dict=FILE``, ...). A crash is
any exception the parser's contract (``contracts.py``) does not allow; libFuzzer saves the input
as ``crash-<sha1>`` in the working directory (or ``-artifact_prefix``) and exits non-zero.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris


def scratch(name: str) -> Path:
    """This harness's scratch folder, made if missing (atheris.Fuzz never returns to clean up)."""
    folder = Path(tempfile.gettempdir()) / f"kqueue-fuzz-{name}"
    folder.mkdir(exist_ok=True)
    return folder


def scratch_file(name: str, suffix: str) -> Path:
    """A file for one input, private to this process."""
    return scratch(name) / f"input-{os.getpid()}{suffix}"


def dictionary_entry(token: bytes) -> str:
    """One line of a libFuzzer dictionary: the token in quotes, other than plain ASCII as \\xNN."""
    plain = (chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02x}" for b in token)
    return '"' + "".join(plain) + '"'


def fuzz(
    name: str, one_input: Callable[[bytes], None], seeds: list[bytes], tokens: list[bytes]
) -> None:
    """Fuzz ``one_input`` from ``seeds`` and ``tokens`` with the command line's libFuzzer flags."""
    argv = list(sys.argv)
    if not any(arg.startswith("-dict=") for arg in argv):
        words = scratch(name) / "tokens.dict"
        words.write_text("".join(dictionary_entry(token) + "\n" for token in tokens))
        argv.insert(1, f"-dict={words}")
    if not any(not arg.startswith("-") for arg in argv[1:]):  # no corpus directory given
        corpus = scratch(name) / "corpus"
        corpus.mkdir(exist_ok=True)
        for i, seed in enumerate(seeds):
            (corpus / f"seed-{i}").write_bytes(seed)
        argv.append(str(corpus))
    atheris.Setup(argv, one_input)
    atheris.Fuzz()
