"""Stand-in for CPython's `random` under MicroPython (test-only): the tests draw reproducible
noise, jitter and framings from `random.Random(seed)`, which MicroPython's one-state `random`
module lacks. SplitMix64 (Steele, Lea and Flood 2014) is small and statistically sound enough
for that; the streams differ from CPython's Mersenne Twister, so a test must not depend on the
exact values drawn, only on their distribution.
"""

import math

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


class Random:
    def __init__(self, seed=0):
        self._state = hash(seed) & _MASK

    def _next(self):
        self._state = (self._state + _GOLDEN) & _MASK
        value = self._state
        value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
        return value ^ (value >> 31)

    def random(self):
        return (self._next() >> 11) / 9007199254740992.0  # 53 bits, [0, 1)

    def randrange(self, start, stop=None, step=1):
        if stop is None:
            start, stop = 0, start
        count = (stop - start + step - 1) // step
        if count <= 0:
            raise ValueError("empty range for randrange()")
        return start + step * (self._next() % count)

    def randint(self, low, high):
        return self.randrange(low, high + 1)

    def uniform(self, low, high):
        return low + (high - low) * self.random()

    def gauss(self, mu=0.0, sigma=1.0):
        # Box-Muller; 1 - random() keeps the logarithm's argument in (0, 1].
        radius = math.sqrt(-2.0 * math.log(1.0 - self.random()))
        return mu + sigma * radius * math.cos(2 * math.pi * self.random())

    def choice(self, sequence):
        return sequence[self._next() % len(sequence)]

    def sample(self, population, count):
        pool = list(population)
        if count > len(pool):
            raise ValueError("sample larger than population")
        for index in range(count):
            other = index + self._next() % (len(pool) - index)
            pool[index], pool[other] = pool[other], pool[index]
        return pool[:count]

    def shuffle(self, items):
        for index in range(len(items) - 1, 0, -1):
            other = self._next() % (index + 1)
            items[index], items[other] = items[other], items[index]

    def randbytes(self, count):
        return bytes(self._next() & 0xFF for _ in range(count))
