"""When to try a delivery again: a schedule of delays with jitter, spanning hours like Standard Webhooks'."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetrySchedule:
    """`delays_s[i]` is the wait after try i+1 fails; there are len(delays_s) + 1 tries in all."""

    delays_s: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000)
    jitter: float = 0.2  # each wait is scaled by a random factor in [1 - jitter, 1 + jitter]
    rng: random.Random = field(default_factory=random.Random, compare=False)

    @property
    def max_attempts(self) -> int:
        return len(self.delays_s) + 1

    def delay_after(self, attempt: int, retry_after_s: float | None = None) -> float | None:
        """Seconds to wait after try `attempt` (1-based) failed, or None when the tries are spent.

        Jitter spreads the retries of many deliveries that failed together (one
        receiver down) so they do not all come back at the same second. A
        receiver's Retry-After is honoured when it asks for longer.
        """
        if attempt >= self.max_attempts:
            return None
        base = self.delays_s[attempt - 1]
        delay = base * self.rng.uniform(1 - self.jitter, 1 + self.jitter)
        return max(delay, retry_after_s or 0.0)
