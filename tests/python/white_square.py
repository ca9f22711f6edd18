"""Test: a white square at the top left, drawn on the luma plane in place."""


def process(frame, meta, args):
    s = int(args["size"])
    frame.y[0:s, 0:s] = 235
    if frame.format == "I420":
        frame.u[0 : s // 2, 0 : s // 2] = 128
        frame.v[0 : s // 2, 0 : s // 2] = 128
    else:
        frame.uv[0 : s // 2, 0 : s // 2] = 128
