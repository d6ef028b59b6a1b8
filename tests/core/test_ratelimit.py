from core.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(["a"], rate=2.0, burst=3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == 0.5
    clock.now += 0.5
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == 0.5


def test_refill_never_exceeds_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(["a"], rate=10.0, burst=2, clock=clock)
    clock.now += 3600
    assert [limiter.acquire("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("a") > 0


def test_buckets_are_independent() -> None:
    clock = Clock()
    limiter = RateLimiter(["a", "b"], rate=1.0, burst=1, clock=clock)
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == 1.0
    assert limiter.acquire("b") == 0.0
