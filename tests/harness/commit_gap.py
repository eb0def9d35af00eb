"""``python -m tests.harness.commit_gap serve NAME``: a service that dies in the commit gap.

The fault runs need a process that is SIGKILLed after its database transaction committed and
before its Kafka offsets are committed, the one moment where a redelivery must be absorbed by the
inbox alone. Production code has no hook for this: this entry wraps ``EventConsumer.process`` (it
returns after the database commit; the consumer commits offsets after it returns) and then runs
the real ``crm`` command line. ``ServiceProcess`` starts a service this way when its environment
holds ``HARNESS_KILL_AFTER_DB_COMMIT_BATCHES=N``: it dies after the N-th batch that applied
something new (a batch of duplicates changes nothing, so dying after it would prove nothing).
"""

from __future__ import annotations

import os
import signal
import sys

from crm_shared.bus.consumer import EventConsumer
from crm_shared.cli import main
from crm_shared.logging import get_logger

KILL_AFTER_ENV = "HARNESS_KILL_AFTER_DB_COMMIT_BATCHES"

log = get_logger(__name__)


def install(kill_after: int) -> None:
    apply_batch = EventConsumer.process
    batches_with_effects = 0

    async def process_then_die_in_the_gap(self, batch):
        nonlocal batches_with_effects
        applied = await apply_batch(self, batch)
        if applied:
            batches_with_effects += 1
            if batches_with_effects >= kill_after:
                log.warning("harness: SIGKILL between the database commit and the offset commit",
                            batches=batches_with_effects)
                os.kill(os.getpid(), signal.SIGKILL)
        return applied

    EventConsumer.process = process_then_die_in_the_gap


if __name__ == "__main__":
    install(int(os.environ[KILL_AFTER_ENV]))
    sys.exit(main(sys.argv[1:]))
