"""Test: a syntax error on line 5."""


def process(frame, meta):
    return [
