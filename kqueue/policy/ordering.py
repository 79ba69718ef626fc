"""Which job runs next: priorities within a queue, and the order a worker tries its queues.

Within a queue, a higher ``priority`` runs first; equal priorities keep due order (a delayed
job by its due time, a ready one by when it was dispatched): ``backlog_key`` is that order, and
every backend and the simulator sort by it. Across the queues of ``--queue``, the default is
strict: the first queue with work wins. ``--queue-order weighted:high=3,default=1`` instead
gives each queue turns in proportion to its weight (smooth weighted round robin), so a busy
first queue cannot starve the others: in every ``sum(weights)`` turns each queue comes first
``weight`` times.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from kqueue.errors import ConfigError

#: Priorities run from -PRIORITY_MAX to PRIORITY_MAX; 0 is the default.
PRIORITY_MAX = 1000
DEFAULT_PRIORITY = 0


def check_priority(value: object, source: str) -> int:
    """``value`` as a priority.

    Raises:
        ConfigError: not an integer, or out of ``-PRIORITY_MAX..PRIORITY_MAX``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{source}: priority={value!r} is not an integer")
    if not -PRIORITY_MAX <= value <= PRIORITY_MAX:
        raise ConfigError(
            f"{source}: priority={value} is out of range -{PRIORITY_MAX}..{PRIORITY_MAX}"
        )
    return value


def backlog_key(priority: int, due_s: float, seq: int) -> tuple[int, float, int]:
    """Sort key of a waiting job: higher priority, then earlier due, then dispatch order."""
    return (-priority, due_s, seq)


class QueueOrderMode(enum.StrEnum):
    """How a worker picks among its queues."""

    #: The order of ``--queue``: the first queue with work wins.
    STRICT = "strict"
    #: Turns in proportion to each queue's weight.
    WEIGHTED = "weighted"


@dataclass(frozen=True)
class QueueOrder:
    """A parsed ``--queue-order``."""

    mode: QueueOrderMode = QueueOrderMode.STRICT
    #: (queue, weight) in the order given (weighted mode only).
    weights: tuple[tuple[str, int], ...] = ()

    def turns(self, queues: Sequence[str]) -> list[list[str]]:
        """One list per turn of the queues to try, in order; a worker cycles through them."""
        if self.mode is QueueOrderMode.STRICT:
            return [list(queues)]
        weights = dict(self.weights)
        missing = [q for q in queues if q not in weights]
        if missing:
            raise ConfigError(
                f"--queue-order gives no weight to queue(s) {', '.join(missing)}; "
                f"weighted: {', '.join(weights)}"
            )
        leaders = smooth_round_robin([(q, weights[q]) for q in queues])
        return [[q] + [other for other in queues if other != q] for q in leaders]


def parse_queue_order(text: str) -> QueueOrder:
    """``strict`` or ``weighted:high=3,default=1``.

    Raises:
        ConfigError: another mode, a malformed pair, or a weight that is not an integer >= 1.
    """
    mode, _, rest = text.strip().partition(":")
    if mode == QueueOrderMode.STRICT and not rest:
        return QueueOrder()
    if mode != QueueOrderMode.WEIGHTED or not rest:
        raise ConfigError(
            f"--queue-order {text!r}: expected 'strict' or 'weighted:QUEUE=WEIGHT,...' "
            "(e.g. weighted:high=3,default=1)"
        )
    pairs = []
    for item in rest.split(","):
        queue, eq, weight = item.strip().partition("=")
        if not eq or not queue or not weight.strip().isdigit() or int(weight) < 1:
            raise ConfigError(
                f"--queue-order {text!r}: {item!r} is not QUEUE=WEIGHT with a weight >= 1"
            )
        pairs.append((queue.strip(), int(weight)))
    if len({q for q, _ in pairs}) != len(pairs):
        raise ConfigError(f"--queue-order {text!r}: a queue is named twice")
    return QueueOrder(QueueOrderMode.WEIGHTED, tuple(pairs))


def smooth_round_robin(weights: Sequence[tuple[str, int]]) -> list[str]:
    """One cycle (``sum`` of the weights long) of smooth weighted round robin (nginx's).

    Each queue appears ``weight`` times, spread out: ``a=3, b=1`` gives ``a a b a``.
    """
    total = sum(w for _, w in weights)
    current = {q: 0 for q, _ in weights}
    order = []
    for _ in range(total):
        for q, w in weights:
            current[q] += w
        pick = max(weights, key=lambda pair: current[pair[0]])[0]
        current[pick] -= total
        order.append(pick)
    return order
