"""Test: keeps a view of the frame after returning (framegate must copy such frames)."""

kept = []


def process(frame, meta):
    kept[:] = [frame.y]
    frame.y[0:8, 0:8] = 255
