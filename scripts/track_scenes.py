"""Synthetic tracking scenes with known ground truth (issue 21's evaluation).

A scene is a 1280x720, 25 fps street seen from above at an angle: people and cars enter at an
edge, walk or drive along gently curving paths (some stop for a while), cross a counting line,
pass in front of each other and leave. Everything is decided by a seed, so a scene is the
same on every machine.

    objects(seed, seconds)   -> the objects and their paths
    ground_truth(objs, t)    -> the boxes visible at time t, with their visible fraction
    detections(gt, rng)      -> what a detector would report: jittered boxes, scores that fall
                                with occlusion (low-score boxes), misses, false positives
    crossings(objs, line)    -> the true line counts per class and direction (sure, don't care)
    count_error(...)         -> how far counts are from them

The rendering of these objects as pictures (for the end-to-end run with the real detector) is
in `render()`: sprites from real photos over a real street with its people taken away.
"""

import math
import random

W, H, FPS = 1280, 720, 25

PERSON = "person"
CAR = "car"


class Obj:
    """One object: class, size, and a path given as a function of time."""

    def __init__(self, oid, cls, w, h, t0, x0, y0, vx, vy, wobble, stop_at, stop_for):
        self.id, self.cls, self.w, self.h = oid, cls, w, h
        self.t0, self.x0, self.y0, self.vx, self.vy = t0, x0, y0, vx, vy
        self.wobble, self.stop_at, self.stop_for = wobble, stop_at, stop_for

    def moving_time(self, t):
        """Time spent moving since t0 (the stop holds it still)."""
        dt = t - self.t0
        if self.stop_at is None or dt < self.stop_at:
            return dt
        return max(self.stop_at, dt - self.stop_for)

    def box(self, t):
        """The full box [x, y, w, h] (bottom-centre on the path) at time t, or None before t0."""
        if t < self.t0:
            return None
        m = self.moving_time(t)
        cx = self.x0 + self.vx * m
        by = self.y0 + self.vy * m + self.wobble * math.sin(m * 0.9)
        # Perspective: nearer the bottom of the picture, bigger.
        s = 0.75 + 0.5 * by / H
        w, h = self.w * s, self.h * s
        return [cx - w / 2, by - h, w, h]


def objects(seed, seconds, rate=0.9):
    """Objects entering over `seconds` at about `rate` per second."""
    rng = random.Random(seed)
    out, t, oid = [], 0.5, 1
    # The last ones enter early enough to cross the whole picture (slowest walk plus a stop).
    while t < seconds - 16:
        cls = PERSON if rng.random() < 0.7 else CAR
        if cls == PERSON:
            w, h, speed = rng.uniform(36, 52), rng.uniform(95, 130), rng.uniform(60, 140)
        else:
            w, h, speed = rng.uniform(140, 190), rng.uniform(70, 95), rng.uniform(140, 260)
        left = rng.random() < 0.5
        y0 = rng.uniform(260, 690)
        x0 = -w * 0.4 if left else W + w * 0.4
        vx = speed if left else -speed
        vy = rng.uniform(-15, 15)
        wobble = rng.uniform(0, 25)
        stop = rng.random() < 0.2
        stop_at = rng.uniform(2.0, 6.0) if stop else None
        stop_for = rng.uniform(1.0, 4.0) if stop else 0.0
        out.append(Obj(oid, cls, w, h, t, x0, y0, vx, vy, wobble, stop_at, stop_for))
        oid += 1
        t += rng.expovariate(rate)
    return out


def _overlap(a, b):
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(ix, 0) * max(iy, 0)


def _in_picture(b):
    """The part [x, y, w, h] of box `b` inside the frame, or None where none of it is."""
    x0, y0 = max(b[0], 0), max(b[1], 0)
    x1, y1 = min(b[0] + b[2], W), min(b[1] + b[3], H)
    if x1 <= x0 or y1 <= y0:
        return None
    return [x0, y0, x1 - x0, y1 - y0]


def ground_truth(objs, t):
    """[(id, class, box clipped to the frame, visible fraction)] of the objects in view at t.
    Nearer objects (lower bottom edge) hide farther ones; a box less than 30% visible (off the
    frame or hidden) is not in the ground truth."""
    live = []
    for o in objs:
        b = o.box(t)
        if b is None:
            continue
        clipped = _in_picture(b)
        if clipped is None:
            continue
        in_frame = clipped[2] * clipped[3] / (b[2] * b[3])
        live.append((o, clipped, in_frame, b[1] + b[3]))
    out = []
    for o, box, in_frame, bottom in live:
        area = box[2] * box[3]
        hidden = max(
            [_overlap(box, other) / area for p, other, _, ob in live if p is not o and ob > bottom],
            default=0.0,
        )
        visible = in_frame * (1.0 - hidden)
        if visible >= 0.3:
            out.append((o.id, o.cls, box, visible))
    return out


def detections(gt, rng, occlusion=True, miss=0.05, false_rate=0.08):
    """A detector's result for one frame of ground truth. With `occlusion`, partly hidden
    objects are missed more often and score 0.15-0.5 (the low-score boxes ByteTrack keeps), and
    some results have a false box; without it, every box is jittered the same way and 10% are
    dropped at random ("ground truth plus noise and dropouts")."""
    out = []
    if not occlusion:
        miss, false_rate = 0.10, 0.0
    for _, cls, b, visible in gt:
        if rng.random() < miss + ((1.0 - visible) * 0.4 if occlusion else 0.0):
            continue
        j = 0.03
        w = b[2] * (1 + rng.gauss(0, j))
        h = b[3] * (1 + rng.gauss(0, j))
        x = b[0] + rng.gauss(0, j * b[2])
        y = b[1] + rng.gauss(0, j * b[3])
        low = occlusion and visible <= 0.7
        score = rng.uniform(0.15, 0.5) if low else rng.uniform(0.6, 0.95)
        out.append({"box": [x, y, w, h], "label": cls, "score": round(score, 3)})
    if rng.random() < false_rate:
        w, h = rng.uniform(30, 120), rng.uniform(40, 140)
        out.append(
            {
                "box": [rng.uniform(0, W - w), rng.uniform(0, H - h), w, h],
                "label": rng.choice([PERSON, CAR]),
                "score": round(rng.uniform(0.3, 0.75), 3),
            }
        )
    return out


def _side(a, b, p):
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


# An object less than this share in the picture is truncated by its edge: how it crosses a line
# there is "don't care" (a detector may see a head or not), as benchmarks leave out heavily
# truncated objects (KITTI's DontCare, MOT17's ignored boxes).
TRUNCATED = 0.5


def crossings(objs, line, seconds, classes=(PERSON, CAR)):
    """True crossings of the line ((x, y), (x, y)): ({class: {"forward": n, "backward": n}}
    sure, the same of "don't care" ones). Taken by the bottom-centre of each object's box in
    the picture (its full box clipped to the frame, as framegate's rule takes it: an object
    seen only down to the picture's edge crosses a line drawn to that edge), sampled every
    frame over `seconds`, hidden behind others or not. A crossing made while the object was
    less than `TRUNCATED` in the picture is "don't care": counting it or not is no error."""
    a, b = line
    sure = {c: {"forward": 0, "backward": 0} for c in classes}
    maybe = {c: {"forward": 0, "backward": 0} for c in classes}
    for o in objs:
        prev = None
        for f in range(int(seconds * FPS) + 1):
            box = o.box(f / FPS)
            if box is None:
                continue
            seen = _in_picture(box)
            if seen is None:
                prev = None  # out of the picture
                continue
            p = (seen[0] + seen[2] / 2, seen[1] + seen[3])
            if prev is not None:
                s0, s1 = _side(a, b, prev), _side(a, b, p)
                if s0 > 0 >= s1 or s0 < 0 <= s1:
                    # Within the segment's extent (the line's y range for these scenes' lines).
                    lo, hi = sorted((a[1], b[1]))
                    if lo <= p[1] <= hi and s0 != 0:
                        truncated = seen[2] * seen[3] < TRUNCATED * box[2] * box[3]
                        tally = maybe if truncated else sure
                        tally[o.cls]["forward" if s0 > 0 else "backward"] += 1
            prev = p
    return sure, maybe


def count_error(sure, maybe, counted):
    """How far `counted` ({class: {direction: n}}) is from the truth: per class and direction,
    what it counted below the sure crossings or above the sure and "don't care" ones."""
    err = 0
    for c in sure:
        for d in ("forward", "backward"):
            n = counted.get(c, {}).get(d, 0)
            err += max(0, sure[c][d] - n) + max(0, n - sure[c][d] - maybe[c][d])
    return err


# Sprites from the repository's test data (../shared/testdata, Debian's darknet data): the
# person of person.jpg, cut out along his outline (OpenCV's GrabCut, seeded with strokes known
# to lie on him and a region known to lie off him), and the pickup truck of dog.jpg with the
# street around it, over the street of vtest.avi with its people taken away (`street_plate`).
# The pickup keeps its photo's rectangle: cut out and set on the grass, the shared detector
# found it far less often (recall at score 0.3: 0.56 against 0.87), a model's taste for context
# that says nothing about the tracker.
PERSON_CROP = (190, 98, 271, 380)  # x0, y0, x1, y1
CAR_CROP = (467, 74, 692, 170)
# Strokes on him ((points, thickness) in photo pixels) and a polygon off him.
PERSON_ON = [
    ([(235, 112), (232, 180), (232, 300), (230, 360)], 6),
    ([(222, 330), (222, 368)], 5),
    ([(238, 330), (240, 368)], 5),
    ([(262, 240), (266, 265)], 3),
]
PERSON_OFF = [[(150, 250), (205, 250), (205, 345), (150, 345)]]  # the dog beside him


def street_plate(video, every=8, top=110):
    """The street of `video` with nobody on it: the median of every `every`th frame (people
    walk on, the street stays), rows above `top` (parked vans) left out, scaled to the scene."""
    import cv2
    import numpy as np

    cap, frames, i = cv2.VideoCapture(video), [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % every == 0:
            frames.append(frame[top:])
        i += 1
    if not frames:
        raise RuntimeError(f"{video}: no frames")
    plate = np.median(np.stack(frames), axis=0).astype(np.uint8)
    return cv2.resize(plate, (W, H), interpolation=cv2.INTER_CUBIC)


def cut_out(photo, crop, on, off, margin=10):
    """The sprite of `crop` in `photo` as (BGR, alpha in 0..1): GrabCut seeded with the
    strokes `on` the object and the polygons `off` it, its edge softened by a pixel."""
    import cv2
    import numpy as np

    cv2.setRNGSeed(0)
    x0, y0, x1, y1 = crop
    mask = np.full(photo.shape[:2], cv2.GC_BGD, np.uint8)
    mask[y0 - margin : y1 + margin, x0 - margin : x1 + margin] = cv2.GC_PR_BGD
    mask[y0:y1, x0:x1] = cv2.GC_PR_FGD
    for poly in off:
        cv2.fillPoly(mask, [np.array(poly, np.int32)], int(cv2.GC_BGD))
    for points, thickness in on:
        cv2.polylines(mask, [np.array(points, np.int32)], False, int(cv2.GC_FGD), thickness)
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.grabCut(photo, mask, None, bgd, fgd, 8, cv2.GC_INIT_WITH_MASK)
    alpha = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0)
    return photo[y0:y1, x0:x1], alpha[y0:y1, x0:x1]


def render(objs, seconds, out_path, testdata):
    """Writes the scene as H.264 (1280x720, 25 fps, GOP 50) to `out_path` with ffmpeg: each
    object's sprite scaled to its full box, nearer objects drawn over farther ones."""
    import subprocess

    import cv2
    import numpy as np

    bg = street_plate(f"{testdata}/vtest.avi")
    sprites = {
        PERSON: cut_out(cv2.imread(f"{testdata}/person.jpg"), PERSON_CROP, PERSON_ON, PERSON_OFF),
    }
    car = cv2.imread(f"{testdata}/dog.jpg")[CAR_CROP[1] : CAR_CROP[3], CAR_CROP[0] : CAR_CROP[2]]
    sprites[CAR] = (car, np.ones(car.shape[:2], np.float32))
    enc = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
         "-s", f"{W}x{H}", "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-preset",
         "veryfast", "-g", "50", "-bf", "0", "-pix_fmt", "yuv420p", out_path],
        stdin=subprocess.PIPE,
    )
    for f in range(int(seconds * FPS)):
        t = f / FPS
        frame = bg.copy()
        live = [(o, o.box(t)) for o in objs]
        live = sorted((x for x in live if x[1] is not None), key=lambda x: x[1][1] + x[1][3])
        for o, b in live:
            x, y, w, h = (int(round(v)) for v in b)
            if w < 2 or h < 2:
                continue
            pixels, alpha = sprites[o.cls]
            sprite = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA)
            a = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)[..., None]
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
            if x1 <= x0 or y1 <= y0:
                continue
            a = a[y0 - y : y1 - y, x0 - x : x1 - x]
            under = frame[y0:y1, x0:x1].astype(np.float32)
            over = sprite[y0 - y : y1 - y, x0 - x : x1 - x].astype(np.float32)
            frame[y0:y1, x0:x1] = (over * a + under * (1.0 - a) + 0.5).astype(np.uint8)
        enc.stdin.write(frame.tobytes())
    enc.stdin.close()
    if enc.wait() != 0:
        raise RuntimeError("ffmpeg could not encode the scene")
