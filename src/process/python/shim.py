"""framegate's side of the `python` processor, run inside framegate's embedded interpreter.

It imports the users' files, wraps each frame's memory (a `FrameMemory` made by framegate) in a
`Frame` whose planes are numpy arrays over that memory, calls the function, and turns what it
returns into JSON for framegate to check. Nothing here copies a plane.
"""

import importlib.util
import json
import os
import sys
import traceback

np = None  # numpy, imported with the first frame (from the venv when one is set)

MAX_RESULT_BYTES = 256 * 1024
MAX_TRACEBACK = 8000


def start():
    """Imports numpy now, not during a frame's call (the first import takes a while)."""
    global np
    import numpy

    np = numpy


def setup(venv):
    """Puts the venv's site-packages first on sys.path."""
    import site

    lib = os.path.join(venv, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
    if not os.path.isdir(lib):
        raise ValueError(
            "python.venv `%s` has no %s (a venv of another Python version?)"
            % (venv, os.path.relpath(lib, venv))
        )
    before = list(sys.path)
    site.addsitedir(lib)
    added = [p for p in sys.path if p not in before]
    sys.path[:] = added + [p for p in sys.path if p not in added]


def _where(exc, path):
    """`file:line` of the innermost place in the user's file that the exception went through."""
    if isinstance(exc, SyntaxError) and exc.filename == path:
        return "%s:%s" % (path, exc.lineno or 0)
    line = None
    for fs in traceback.extract_tb(exc.__traceback__):
        if fs.filename == path:
            line = fs.lineno
    return "%s:%s" % (path, line) if line is not None else path


def load(path, name, function):
    """Imports `path` as module `name`; returns the function. A failure raises ImportError
    whose message starts with `file:line:`."""
    here = os.path.dirname(os.path.abspath(path))
    if here not in sys.path:
        sys.path.append(here)  # its own helper modules, beside it
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError("cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except BaseException as e:  # noqa: BLE001 - everything the user's file raises
        msg = "%s: %s: %s" % (_where(e, path), type(e).__name__, e)
        raise ImportError(msg[:2000]) from None
    f = getattr(module, function, None)
    if not callable(f):
        raise ImportError("%s: no function `%s` in it" % (path, function))
    return f


class _Plane:
    """What numpy reads a plane through: its address, shape and strides (no copy)."""

    def __init__(self, memory, interface):
        self._memory = memory
        self.__array_interface__ = interface


class Frame:
    """One frame of a stream, in framegate's memory.

    `y` (and `u`, `v` for I420, or `uv` for NV12) are numpy uint8 arrays over the frame's own
    planes: writing them draws on the frame (when the processor `draws`). `bgr()` is an HxWx3
    copy converted once per frame, for OpenCV; `set_bgr(img)` writes an HxWx3 picture back.
    """

    def __init__(self, memory):
        self._memory = memory
        self.width = memory.width
        self.height = memory.height
        self.format = memory.format
        self.writable = memory.writable
        self._planes = {}
        self._bgr = None

    def _plane(self, i):
        a = self._planes.get(i)
        if a is None:
            if self._memory is None:
                raise ValueError("this frame has gone on to the outputs: keep copies, not views")
            a = np.asarray(_Plane(self._memory, self._memory.interface(i)))
            self._planes[i] = a
        return a

    @property
    def y(self):
        return self._plane(0)

    @property
    def u(self):
        if self.format != "I420":
            raise AttributeError("an NV12 frame has `uv`, not `u` and `v`")
        return self._plane(1)

    @property
    def v(self):
        if self.format != "I420":
            raise AttributeError("an NV12 frame has `uv`, not `u` and `v`")
        return self._plane(2)

    @property
    def uv(self):
        if self.format != "NV12":
            raise AttributeError("an I420 frame has `u` and `v`, not `uv`")
        return self._plane(1)

    def bgr(self):
        """The frame as an HxWx3 BGR array (a copy, converted once per frame)."""
        if self._bgr is None:
            if self._memory is None:
                raise ValueError("this frame has gone on to the outputs")
            picture = self._memory.to_bgr()
            self._bgr = np.asarray(_Plane(picture, picture.interface()))
        return self._bgr

    def set_bgr(self, img):
        """Writes an HxWx3 BGR picture into the frame (converted once)."""
        if self._memory is None:
            raise ValueError("this frame has gone on to the outputs")
        if not self.writable:
            raise ValueError("this processor does not draw (draws = false)")
        if img is self._bgr:
            # The frame's own bgr() picture, drawn on: converted back without a copy.
            self._memory.write_bgr(img.base._memory, None)
            return
        img = np.ascontiguousarray(img, dtype=np.uint8)
        if img.shape != (self.height, self.width, 3):
            raise ValueError(
                "set_bgr wants shape (%d, %d, 3), got %r" % (self.height, self.width, img.shape)
            )
        self._memory.write_bgr(None, img)
        self._bgr = None

    def _release(self):
        self._planes = None
        self._bgr = None
        self._memory = None


def _plain(x, depth=0):
    """The result as JSON-able data (numpy numbers become Python numbers)."""
    if depth > 8:
        raise ValueError("nested too deeply")
    if isinstance(x, (str, bool, int, float)) or x is None:
        return x
    if isinstance(x, dict):
        return {str(k): _plain(v, depth + 1) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v, depth + 1) for v in x]
    if np is not None and isinstance(x, np.generic):
        return x.item()
    if np is not None and isinstance(x, np.ndarray) and x.size <= 64:
        return x.tolist()
    raise TypeError("%s is not plain data (dicts, lists, strings, numbers)" % type(x).__name__)


def call(function, memory, meta, args):
    """Calls the user's function on one frame. Returns (json or None, error or None), the
    error being (key, text): the key is the same for the same mistake at the same place."""
    frame = Frame(memory)
    try:
        try:
            out = function(frame, meta) if args is None else function(frame, meta, args)
        finally:
            frame._release()
            frame = None
        if out is None:
            return None, None
        if isinstance(out, dict):
            out = [out]
        text = json.dumps(_plain(out), allow_nan=False)
        if len(text) > MAX_RESULT_BYTES:
            raise ValueError("returned %d bytes of results, more than %d" % (len(text), MAX_RESULT_BYTES))
        return text, None
    except Exception as e:  # noqa: BLE001 - the user's mistakes are counted, not fatal
        tb = e.__traceback__
        place = "?"
        for fs in traceback.extract_tb(tb):
            place = "%s:%s" % (os.path.basename(fs.filename), fs.lineno)
        key = "%s at %s: %s" % (type(e).__name__, place, str(e)[:200])
        text = "".join(traceback.format_exception(type(e), e, tb))[-MAX_TRACEBACK:]
        e = tb = None
        return None, (key, text)
