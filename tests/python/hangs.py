"""Test: a call that does not return for a long while (as a function stuck in C would)."""

import time


def process(frame, meta):
    time.sleep(2.5)
