"""Test: raises on every other call."""

n = [0]


def process(frame, meta):
    n[0] += 1
    if n[0] % 2:
        raise ValueError("odd call %d" % (n[0] % 2))
    return None
