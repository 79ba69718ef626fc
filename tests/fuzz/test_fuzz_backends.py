"""What a backend hands the worker is what was enqueued: any job id, any body bytes.

The worker decodes ``Lease.body``; each backend must hand those bytes back untouched (the Redis
backend packs id, attempts, time and body into one string per message and parses it again).
"""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.fuzz_support import FUZZ, nasty_bytes, nasty_text

#: A queue round trip costs a few ms (a transaction, or a server round trip): fewer examples.
FEWER = settings(FUZZ, max_examples=max(10, FUZZ.max_examples // 4))

job_ids = (nasty_text | st.text(min_size=1, max_size=40)).filter(bool)


@FEWER
@given(
    messages=st.dictionaries(job_ids, nasty_bytes | st.binary(max_size=50), min_size=1, max_size=4)
)
def test_lease_hands_back_the_enqueued_ids_and_bodies(backend, messages):
    queue = f"fuzz-{uuid.uuid4().hex}"  # the backend lives across examples: one queue each
    backend.enqueue_many(queue, list(messages.items()))
    leases = backend.lease(queue, "fuzzer", limit=len(messages) + 1, visibility_timeout_s=60)
    assert {lease.job_id: lease.body for lease in leases} == messages
    assert all(lease.attempt == 1 for lease in leases)
    assert backend.ack(leases) == len(messages)
