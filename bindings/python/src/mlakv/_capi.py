"""The C ABI of ``include/mlakv/mlakv.h`` in ctypes, and the loading of the shared library.

This module mirrors the public header one to one (constants, ``mlakv_tensor``,
``mlakv_pack_args``, ``mlakv_backend_info`` and the prototypes of every function).  It is the
"raw C API" of the binding: tests use it to call the library exactly as a C program would.

Where the library comes from (first hit wins, see :func:`find_library_candidates`):

1. ``MLAKV_LIBRARY``: the path of ``libmlakv.so`` (or of a folder holding it).  When it is set,
   nothing else is tried: a wrong path is an error, not a silent fallback.
2. A copy bundled inside the package (``mlakv/_lib/``), for wheels that ship one.
3. The system's: ``ctypes.util.find_library("mlakv")`` (ldconfig cache, ``LD_LIBRARY_PATH``),
   the loader's own search for ``libmlakv.so.0``, and pkg-config's ``libdir`` of ``mlakv``.

At load the library's ABI is checked: ``mlakv_version()``'s major number must be this binding's,
and ``mlakv_pack_args_init_sized`` (mlakv >= 0.2), given this binding's ``sizeof(mlakv_pack_args)``,
must write the defaults the ctypes declaration below expects and nothing past it. Argument
structs are always initialised that way, with the binding's own size: a newer library (more
fields appended) gives the fields this binding does not know their defaults. A 0.1 library (no
``mlakv_pack_args_init_sized``; its ``mlakv_pack_args_init`` writes the 456 bytes of the 0.1
layout) is accepted too: the binding then fills the 0.1 part through it and zeroes the rest,
which such a library accepts (per-head scales and amax outputs then fail with
:class:`~mlakv.StructSizeError` from the library; the binding says so before calling).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import List, Optional, Tuple

from ._errors import STATUS_NAMES, Error, LibraryError, LibraryNotFoundError, error_class

# ---- constants (mlakv.h) ----------------------------------------------------------------------
ABI_MAJOR = 0  # the MLAKV_VERSION_MAJOR this binding was written against

MLAKV_OK = 0
MLAKV_ERR_STRUCT_SIZE = 2
MLAKV_ERR_BUFFER_TOO_SMALL = 16

DTYPE_INVALID = 0
DTYPE_BF16 = 1
DTYPE_FP16 = 2
DTYPE_FP32 = 3
DTYPE_E4M3FN = 4
DTYPE_E5M2 = 5
DTYPE_E4M3FNUZ = 6
DTYPE_E5M2FNUZ = 7

BACKEND_AUTO = 0
BACKEND_REFERENCE = 1
BACKEND_CUDA = 2
BACKEND_HIP = 3

PDL_AUTO = 0
PDL_ON = 1
PDL_OFF = 2

FLAG_TRUST_POINTERS = 0x1
FLAGS_KNOWN = 0x1

# mlakv_pack_args.scale_granularity (since 0.2)
SCALE_PER_TENSOR = 0
SCALE_PER_HEAD = 1

# The struct_size of a caller built against mlakv 0.1 (MLAKV_PACK_ARGS_SIZE_0_1): the 0.1 layout
# ends there, the fields appended by 0.2 follow.
PACK_ARGS_SIZE_0_1 = 456

MAX_RANK = 4

DTYPE_NAMES = {DTYPE_BF16: "bf16", DTYPE_FP16: "fp16", DTYPE_FP32: "fp32",
               DTYPE_E4M3FN: "e4m3fn", DTYPE_E5M2: "e5m2", DTYPE_E4M3FNUZ: "e4m3fnuz",
               DTYPE_E5M2FNUZ: "e5m2fnuz"}
BACKEND_NAMES = {BACKEND_AUTO: "auto", BACKEND_REFERENCE: "reference", BACKEND_CUDA: "cuda",
                 BACKEND_HIP: "hip"}


# ---- structs ----------------------------------------------------------------------------------
class Tensor(ctypes.Structure):
    """``mlakv_tensor``: data pointer, dtype, rank, shape and strides (in elements)."""
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int32),
        ("ndim", ctypes.c_int32),
        ("shape", ctypes.c_int64 * MAX_RANK),
        ("strides", ctypes.c_int64 * MAX_RANK),
    ]


class PackArgs(ctypes.Structure):
    """``mlakv_pack_args`` (the 0.2 layout); initialise with :meth:`Library.init_args` (which
    calls ``mlakv_pack_args_init_sized`` with ``ctypes.sizeof(PackArgs)``)."""
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("k_nope", Tensor),
        ("k_pe", Tensor),
        ("v", Tensor),
        ("k_out", Tensor),
        ("v_out", Tensor),
        ("k_scale_inv", ctypes.c_float),
        ("v_scale_inv", ctypes.c_float),
        ("k_scale_inv_ptr", ctypes.c_void_p),
        ("v_scale_inv_ptr", ctypes.c_void_p),
        ("backend", ctypes.c_int32),
        ("device", ctypes.c_int32),
        ("stream", ctypes.c_void_p),
        ("pdl", ctypes.c_int32),
        ("flags", ctypes.c_uint32),
        # ---- since 0.2 (a 0.1 caller's struct_size, 456, ends before them)
        ("scale_granularity", ctypes.c_int32),
        ("reserved", ctypes.c_uint32),
        ("k_amax", ctypes.c_void_p),
        ("v_amax", ctypes.c_void_p),
    ]


class BackendInfo(ctypes.Structure):
    """``mlakv_backend_info``."""
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("backend", ctypes.c_int32),
        ("name", ctypes.c_char_p),
        ("compiled", ctypes.c_int32),
        ("usable", ctypes.c_int32),
        ("device_count", ctypes.c_int32),
        ("detail", ctypes.c_char_p),
    ]


TENSOR_FIELDS = ("k_nope", "k_pe", "v", "k_out", "v_out")
# Byte offsets used by the hot path (it writes pointers, scales and stream straight into the
# struct's memory through memoryviews instead of through ctypes descriptors).
OFFSET_TENSOR = tuple(getattr(PackArgs, f).offset for f in TENSOR_FIELDS)
OFFSET_K_SCALE = PackArgs.k_scale_inv.offset
OFFSET_V_SCALE = PackArgs.v_scale_inv.offset
OFFSET_K_SCALE_PTR = PackArgs.k_scale_inv_ptr.offset
OFFSET_V_SCALE_PTR = PackArgs.v_scale_inv_ptr.offset
OFFSET_STREAM = PackArgs.stream.offset
OFFSET_DEVICE = PackArgs.device.offset
OFFSET_GRANULARITY = PackArgs.scale_granularity.offset
OFFSET_K_AMAX = PackArgs.k_amax.offset
OFFSET_V_AMAX = PackArgs.v_amax.offset
for _off in OFFSET_TENSOR + (OFFSET_K_SCALE_PTR, OFFSET_V_SCALE_PTR, OFFSET_STREAM, OFFSET_K_AMAX,
                             OFFSET_V_AMAX):
    assert _off % 8 == 0, "mlakv_pack_args: a pointer field is not 8-byte aligned"
assert OFFSET_K_SCALE % 4 == 0 and OFFSET_V_SCALE % 4 == 0
# the header's layout: the 0.1 fields end at 456, then granularity, reserved, two pointers
assert OFFSET_GRANULARITY == PACK_ARGS_SIZE_0_1 and ctypes.sizeof(PackArgs) == 480
assert ctypes.sizeof(ctypes.c_void_p) == 8, "mlakv's Python binding needs a 64-bit Python"

_SizeP = ctypes.POINTER(ctypes.c_size_t)
_PackArgsP = ctypes.POINTER(PackArgs)


class Library:
    """A loaded libmlakv with every prototype declared (``.lib`` is the ``ctypes.CDLL``).

    ``.path`` is where it was loaded from, ``.how`` which rule found it, ``.version`` the
    number of ``mlakv_version()`` and ``.pack_args_size`` the library's ``sizeof(mlakv_pack_args)``.
    """

    def __init__(self, cdll: ctypes.CDLL, path: str, how: str) -> None:
        self.lib = cdll
        self.path = path
        self.how = how
        L = cdll
        try:
            # 0.1's entry point (fills the 456-byte 0.1 layout): only used with a 0.1 library
            L.mlakv_pack_args_init.argtypes = [ctypes.c_void_p]
            L.mlakv_pack_args_init.restype = None
            L.mlakv_pack_fp8.argtypes = [ctypes.c_void_p]
            L.mlakv_pack_fp8.restype = ctypes.c_int32
            L.mlakv_pack_fp8_plan.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                              _SizeP]
            L.mlakv_pack_fp8_plan.restype = ctypes.c_int32
            L.mlakv_status_string.argtypes = [ctypes.c_int32]
            L.mlakv_status_string.restype = ctypes.c_char_p
            L.mlakv_last_error.argtypes = []
            L.mlakv_last_error.restype = ctypes.c_char_p
            L.mlakv_version.argtypes = []
            L.mlakv_version.restype = ctypes.c_int32
            L.mlakv_version_string.argtypes = []
            L.mlakv_version_string.restype = ctypes.c_char_p
            L.mlakv_backend_count.argtypes = []
            L.mlakv_backend_count.restype = ctypes.c_int32
            L.mlakv_backend_get_info.argtypes = [ctypes.c_int32, ctypes.POINTER(BackendInfo)]
            L.mlakv_backend_get_info.restype = ctypes.c_int32
            L.mlakv_dispatch_table_get.argtypes = [ctypes.c_int32, ctypes.c_char_p,
                                                   ctypes.c_size_t, _SizeP]
            L.mlakv_dispatch_table_get.restype = ctypes.c_int32
            L.mlakv_dispatch_table_set.argtypes = [ctypes.c_int32, ctypes.c_char_p]
            L.mlakv_dispatch_table_set.restype = ctypes.c_int32
            L.mlakv_dispatch_table_reset.argtypes = [ctypes.c_int32]
            L.mlakv_dispatch_table_reset.restype = ctypes.c_int32
            L.mlakv_dispatch_table_load.argtypes = [ctypes.c_int32, ctypes.c_char_p]
            L.mlakv_dispatch_table_load.restype = ctypes.c_int32
        except AttributeError as e:
            raise LibraryError("%s is not a usable libmlakv: a symbol is missing (%s)" % (path, e))
        self.version = int(L.mlakv_version())
        self.version_string = (L.mlakv_version_string() or b"").decode("utf-8", "replace")
        # mlakv_pack_args_init_sized appeared in 0.2; a 0.1 library lacks it
        self.init_sized = getattr(L, "mlakv_pack_args_init_sized", None)
        if self.init_sized is not None:
            self.init_sized.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            self.init_sized.restype = ctypes.c_int32
        elif self.version // 10000 == ABI_MAJOR and self.version >= 200:
            raise LibraryError("%s is not a usable libmlakv: it reports version %d but a symbol "
                               "is missing (mlakv_pack_args_init_sized)" % (path, self.version))
        #: Whether the library knows the 0.2 fields (per-head scales, amax outputs).
        self.has_0_2_fields = self.init_sized is not None
        self.pack_args_size = self._check_abi()
        # The hot path calls this object: the prototype above (one c_void_p argument, an int
        # address or a byref) is the cheapest ctypes call form.
        self.pack_fp8 = L.mlakv_pack_fp8

    def _check_abi(self) -> int:
        """Checks the major version and the argument struct; returns the struct_size this binding
        passes (``ctypes.sizeof(PackArgs)``)."""
        major = self.version // 10000
        if major != ABI_MAJOR:
            raise LibraryError(
                "%s is mlakv %s (MLAKV_VERSION %d, ABI major %d) but this Python binding speaks "
                "ABI major %d: install a matching library or binding (MLAKV_LIBRARY picks the "
                "library)" % (self.path, self.version_string, self.version, major, ABI_MAJOR))
        ours = ctypes.sizeof(PackArgs)
        # A poisoned buffer larger than our struct: the library must fill exactly our bytes.
        room = 4096
        buf = (ctypes.c_uint8 * room)()
        ctypes.memset(buf, 0xA5, room)
        problems = []
        if self.init_sized is not None:
            st = int(self.init_sized(buf, ours))
            if st != MLAKV_OK:
                problems.append("mlakv_pack_args_init_sized(args, %d) returned status %d"
                                % (ours, st))
            written = ours
            want_size = ours
        else:  # a 0.1 library: its init writes the 0.1 layout
            self.lib.mlakv_pack_args_init(buf)
            written = PACK_ARGS_SIZE_0_1
            want_size = PACK_ARGS_SIZE_0_1
        lib_size = ctypes.c_size_t.from_buffer(buf, 0).value
        if not problems and lib_size != want_size:
            problems.append("the library's init says struct_size = %d, the binding expected %d "
                            "(its ctypes struct has %d bytes)" % (lib_size, want_size, ours))
        if not problems:
            if any(b != 0xA5 for b in buf[written:room]):
                problems.append("the library's init wrote past the %d bytes it was given"
                                % written)
            raw = bytes(buf[:written]) + bytes(ours - written)
            a = PackArgs.from_buffer_copy(raw)
            if a.k_scale_inv != 1.0 or a.v_scale_inv != 1.0:
                problems.append("default scales (%r, %r) != (1, 1)" % (a.k_scale_inv, a.v_scale_inv))
            if a.k_scale_inv_ptr or a.v_scale_inv_ptr or a.stream:
                problems.append("default pointers are not NULL")
            if (a.backend, a.device, a.pdl, a.flags) != (BACKEND_AUTO, 0, PDL_AUTO, 0):
                problems.append("default backend/device/pdl/flags = %r"
                                % ((a.backend, a.device, a.pdl, a.flags),))
            if (a.scale_granularity, a.reserved, a.k_amax, a.v_amax) != (SCALE_PER_TENSOR, 0,
                                                                         None, None):
                problems.append("default granularity/reserved/amax = %r"
                                % ((a.scale_granularity, a.reserved, a.k_amax, a.v_amax),))
            for f in TENSOR_FIELDS:
                t = getattr(a, f)
                if t.data or t.dtype != DTYPE_INVALID or t.ndim != 0:
                    problems.append("default %s is not an empty mlakv_tensor" % f)
        if problems:
            raise LibraryError("%s does not match the mlakv_pack_args layout of this binding "
                               "(field offsets differ): %s" % (self.path, "; ".join(problems)))
        return ours

    def init_args(self, a: "PackArgs") -> "PackArgs":
        """Fills ``a`` with the library's defaults (``MLAKV_PACK_ARGS_INIT``) and
        ``struct_size = ctypes.sizeof(PackArgs)``, through ``mlakv_pack_args_init_sized``. With
        a 0.1 library: its ``mlakv_pack_args_init`` (the 456-byte 0.1 layout), the appended
        fields zeroed (their defaults) and struct_size set to ours, which it accepts."""
        size = ctypes.sizeof(PackArgs)
        if self.init_sized is not None:
            st = int(self.init_sized(ctypes.addressof(a), size))
            if st != MLAKV_OK:
                raise self.error(st, "mlakv_pack_args_init_sized")
            return a
        ctypes.memset(ctypes.addressof(a), 0, size)
        self.lib.mlakv_pack_args_init(ctypes.addressof(a))
        a.struct_size = size
        return a

    # -- errors --------------------------------------------------------------------------------
    def error(self, status: int, function: str) -> Error:
        """The :class:`Error` for a failed call, with ``mlakv_last_error()``'s message. Call it
        right after the failing call, on the same thread."""
        msg = (self.lib.mlakv_last_error() or b"").decode("utf-8", "replace")
        name = STATUS_NAMES.get(status)
        if name is None:  # a status this binding does not know: the library's own name for it
            text = (self.lib.mlakv_status_string(status) or b"").decode("utf-8", "replace")
            name = text.split(":", 1)[0].strip() or None
        return error_class(status)(status, msg, name, function)

    def check(self, status: int, function: str) -> None:
        if status != MLAKV_OK:
            raise self.error(status, function)

    def text(self, call, function: str) -> str:
        """Runs a ``(buf, buf_size, needed*)`` function of the library, growing the buffer when
        it says MLAKV_ERR_BUFFER_TOO_SMALL."""
        size = 1024
        for _ in range(8):
            buf = ctypes.create_string_buffer(size)
            needed = ctypes.c_size_t(0)
            st = call(buf, size, ctypes.byref(needed))
            if st == MLAKV_ERR_BUFFER_TOO_SMALL and needed.value > size:
                size = needed.value
                continue
            self.check(st, function)
            return buf.value.decode("utf-8", "replace")
        raise self.error(MLAKV_ERR_BUFFER_TOO_SMALL, function)


# ---- finding and loading ------------------------------------------------------------------------
def _lib_names() -> List[str]:
    if sys.platform == "darwin":
        return ["libmlakv.dylib", "libmlakv.0.dylib"]
    if os.name == "nt":
        return ["mlakv.dll", "libmlakv.dll"]
    return ["libmlakv.so", "libmlakv.so.0"]


def _bundled_dir() -> Path:
    return Path(__file__).resolve().parent / "_lib"


def _pkg_config_libdir() -> Tuple[Optional[str], str]:
    exe = shutil.which("pkg-config") or shutil.which("pkgconf")
    if not exe:
        return None, "pkg-config: not installed"
    try:
        out = subprocess.run([exe, "--variable=libdir", "mlakv"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return None, "pkg-config: %s" % e
    if out.returncode != 0 or not out.stdout.strip():
        pcp = os.environ.get("PKG_CONFIG_PATH", "")
        return None, "pkg-config: no mlakv.pc (PKG_CONFIG_PATH=%r)" % pcp
    return out.stdout.strip(), "pkg-config libdir %s" % out.stdout.strip()


def find_library_candidates() -> Tuple[List[Tuple[str, str]], List[str], bool]:
    """The paths/names to try in order, as ``(how, path_or_name)``; the notes of what was looked
    at; and whether ``MLAKV_LIBRARY`` was set (then it is the only candidate)."""
    notes: List[str] = []
    env = os.environ.get("MLAKV_LIBRARY", "").strip()
    if env:
        p = Path(env).expanduser().absolute()  # relative to the working directory of the load
        if p.is_dir():
            hits = [p / n for n in _lib_names() if (p / n).exists()]
            if hits:
                return [("MLAKV_LIBRARY", str(hits[0]))], notes, True
            notes.append("MLAKV_LIBRARY=%s is a folder without %s" % (env, " or ".join(_lib_names())))
            return [], notes, True
        return [("MLAKV_LIBRARY", str(p))], notes, True
    notes.append("MLAKV_LIBRARY: not set")
    cands: List[Tuple[str, str]] = []
    bdir = _bundled_dir()
    bundled = sorted(bdir.glob("*mlakv*")) if bdir.is_dir() else []
    bundled = [b for b in bundled if b.suffix in (".so", ".dylib", ".dll") or ".so." in b.name]
    if bundled:
        cands += [("bundled", str(b)) for b in bundled]
    else:
        notes.append("bundled copy: none in %s" % bdir)
    found = ctypes.util.find_library("mlakv")
    if found:
        cands.append(("ctypes.util.find_library", found))
    else:
        notes.append("ctypes.util.find_library('mlakv'): nothing (ldconfig cache, LD_LIBRARY_PATH)")
    for n in _lib_names():
        cands.append(("system loader", n))
    libdir, note = _pkg_config_libdir()
    notes.append(note)
    if libdir:
        for n in _lib_names():
            p = Path(libdir) / n
            if p.exists():
                cands.append(("pkg-config", str(p)))
                break
        else:
            notes.append("pkg-config libdir %s holds no %s" % (libdir, " or ".join(_lib_names())))
    return cands, notes, False


def _how_to_fix() -> str:
    return ("Point the binding at the library with MLAKV_LIBRARY=/path/to/libmlakv.so (or its "
            "folder), install it where the loader finds it (ldconfig, LD_LIBRARY_PATH), or "
            "make `pkg-config --variable=libdir mlakv` name its folder (PKG_CONFIG_PATH=<prefix>/"
            "lib/pkgconfig); it is built with `cmake -S . -B build && cmake --build build && "
            "cmake --install build --prefix <prefix>`.")


def load(path: Optional[str] = None) -> Library:
    """Loads and checks a libmlakv: ``path`` if given, else the search described in the module
    docstring.  Raises :class:`LibraryNotFoundError` (what was tried, how to fix it) or
    :class:`LibraryError` (found but unusable: wrong ABI, missing symbols)."""
    if path is not None:
        p = Path(path).expanduser()
        cands, notes, explicit = [("explicit path", str(p.absolute() if os.sep in str(path) else p))], [], True
    else:
        cands, notes, explicit = find_library_candidates()
    tried: List[str] = []
    for how, cand in cands:
        try:
            cdll = ctypes.CDLL(cand)
        except OSError as e:
            if how == "system loader":
                tried.append("system loader: dlopen(%r): not found" % cand)
            else:
                tried.append("%s: %s: %s" % (how, cand, e))
            if explicit:
                break
            continue
        return Library(cdll, cand, how)
    lines = notes + tried
    raise LibraryNotFoundError("libmlakv could not be loaded. Looked at:\n  - " + "\n  - ".join(lines)
                               + "\n" + _how_to_fix())


_lock = threading.Lock()
_library: Optional[Library] = None


def lib() -> Library:
    """The process' libmlakv, loaded (and ABI-checked) on first use."""
    global _library
    L = _library
    if L is None:
        with _lock:
            if _library is None:
                _library = load()
            L = _library
    return L


def set_library(path: str) -> Library:
    """Loads ``path`` and makes it the library every later call uses (replacing one already
    loaded; buffers and caches built for the old one are dropped by the callers)."""
    global _library
    L = load(path)
    with _lock:
        _library = L
    from . import _core  # the struct cache holds bound function pointers of the old library
    _core.clear_cache()
    return L
