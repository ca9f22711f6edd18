"""framegate's `python` processor doing nothing: what a call costs (the frame handed to
Python as numpy views, and back)."""


def process(frame, meta):
    frame.y  # the luma plane as a numpy array: the view is made, nothing is copied
    return None
