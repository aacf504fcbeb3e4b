"""Loading the library, the ABI check, version, backends, dispatch tables, the error classes."""
from __future__ import annotations

import ctypes
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mlakv
from mlakv import _capi

from conftest import SRC, env_without_library, header_paths, lib_path, np, poisoned, POISON


def run_py(code: str, env: dict) -> subprocess.CompletedProcess:
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC)] + [p for p in sys.path if p])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)


# ---- version, ABI --------------------------------------------------------------------------
def test_version_and_abi():
    assert mlakv.version() // 10000 == _capi.ABI_MAJOR
    assert mlakv.version() == 200  # 0.2.0
    assert mlakv.version_string().startswith("0.2.0")
    assert mlakv.__version__ == "0.2.0"
    assert os.path.exists(mlakv.library_path())
    L = _capi.lib()
    assert L.has_0_2_fields
    assert L.pack_args_size == ctypes.sizeof(_capi.PackArgs) == 480
    # the header's layout: 8 + 5 * 80 bytes of tensors, then scales, pointers, enums; the 0.1
    # layout ends at 456 (MLAKV_PACK_ARGS_SIZE_0_1), the 0.2 fields follow
    assert ctypes.sizeof(_capi.Tensor) == 80
    assert _capi.PackArgs.k_scale_inv.offset == 408
    assert _capi.PackArgs.stream.offset == 440
    assert _capi.PackArgs.flags.offset == 452
    assert _capi.PackArgs.scale_granularity.offset == 456 == _capi.PACK_ARGS_SIZE_0_1
    assert _capi.PackArgs.reserved.offset == 460
    assert _capi.PackArgs.k_amax.offset == 464
    assert _capi.PackArgs.v_amax.offset == 472


LAYOUT_C = r"""
#include <mlakv/mlakv.h>
#include <stdio.h>
#define F(T, f) printf("%s.%s=%u,%u\n", #T, #f, (unsigned)offsetof(T, f), (unsigned)sizeof(((T*)0)->f))
#define C(c) printf("%s=%lld\n", #c, (long long)(c))
int main(void) {
  printf("size mlakv_tensor=%u\nsize mlakv_pack_args=%u\nsize mlakv_backend_info=%u\n",
         (unsigned)sizeof(mlakv_tensor), (unsigned)sizeof(mlakv_pack_args),
         (unsigned)sizeof(mlakv_backend_info));
  F(mlakv_tensor, data); F(mlakv_tensor, dtype); F(mlakv_tensor, ndim); F(mlakv_tensor, shape);
  F(mlakv_tensor, strides);
  F(mlakv_pack_args, struct_size); F(mlakv_pack_args, k_nope); F(mlakv_pack_args, k_pe);
  F(mlakv_pack_args, v); F(mlakv_pack_args, k_out); F(mlakv_pack_args, v_out);
  F(mlakv_pack_args, k_scale_inv); F(mlakv_pack_args, v_scale_inv);
  F(mlakv_pack_args, k_scale_inv_ptr); F(mlakv_pack_args, v_scale_inv_ptr);
  F(mlakv_pack_args, backend); F(mlakv_pack_args, device); F(mlakv_pack_args, stream);
  F(mlakv_pack_args, pdl); F(mlakv_pack_args, flags); F(mlakv_pack_args, scale_granularity);
  F(mlakv_pack_args, reserved); F(mlakv_pack_args, k_amax); F(mlakv_pack_args, v_amax);
  F(mlakv_backend_info, struct_size); F(mlakv_backend_info, backend); F(mlakv_backend_info, name);
  F(mlakv_backend_info, compiled); F(mlakv_backend_info, usable);
  F(mlakv_backend_info, device_count); F(mlakv_backend_info, detail);
  C(MLAKV_PACK_ARGS_SIZE_0_1); C(MLAKV_SCALE_PER_TENSOR); C(MLAKV_SCALE_PER_HEAD);
  C(MLAKV_MAX_RANK); C(MLAKV_FLAG_TRUST_POINTERS); C(MLAKV_FLAGS_KNOWN);
  C(MLAKV_VERSION_MAJOR);
  return 0;
}
"""


@pytest.mark.parametrize("header", header_paths(), ids=lambda p: str(p))
def test_ctypes_layout_matches_the_c_compiler(header, tmp_path):
    """Every struct size and field offset/size of the ctypes mirror, against a C program
    compiled with the header (the installed one and the source tree's)."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler to compile the layout probe")
    src = tmp_path / "layout.c"
    src.write_text(LAYOUT_C)
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c99", "-Wall", "-Werror", "-I", str(header.parent.parent),
                    str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    c = {}
    for line in out.splitlines():
        k, v = line.split("=")
        c[k] = tuple(int(x) for x in v.split(","))
    structs = {"mlakv_tensor": _capi.Tensor, "mlakv_pack_args": _capi.PackArgs,
               "mlakv_backend_info": _capi.BackendInfo}
    py = {}
    for cname, cls in structs.items():
        py["size " + cname] = (ctypes.sizeof(cls),)
        for fname, ftype in cls._fields_:
            py["%s.%s" % (cname, fname)] = (getattr(cls, fname).offset, ctypes.sizeof(ftype))
    py["MLAKV_PACK_ARGS_SIZE_0_1"] = (_capi.PACK_ARGS_SIZE_0_1,)
    py["MLAKV_SCALE_PER_TENSOR"] = (_capi.SCALE_PER_TENSOR,)
    py["MLAKV_SCALE_PER_HEAD"] = (_capi.SCALE_PER_HEAD,)
    py["MLAKV_MAX_RANK"] = (_capi.MAX_RANK,)
    py["MLAKV_FLAG_TRUST_POINTERS"] = (_capi.FLAG_TRUST_POINTERS,)
    py["MLAKV_FLAGS_KNOWN"] = (_capi.FLAGS_KNOWN,)
    py["MLAKV_VERSION_MAJOR"] = (_capi.ABI_MAJOR,)
    assert c == py


def test_pack_args_init_sized_defaults_match_the_binding():
    """mlakv_pack_args_init_sized(args, 480) fills MLAKV_PACK_ARGS_INIT (what _core.new_args
    gives); the 0.1 entry point mlakv_pack_args_init writes only the 456-byte 0.1 layout."""
    from mlakv import _core
    L = _capi.lib()
    size = ctypes.sizeof(_capi.PackArgs)
    a = _capi.PackArgs()
    ctypes.memset(ctypes.addressof(a), 0x5A, size)
    assert L.lib.mlakv_pack_args_init_sized(ctypes.addressof(a), size) == 0
    assert bytes(a) == bytes(_core.new_args())
    assert a.struct_size == size and a.k_scale_inv == 1.0 and a.v_scale_inv == 1.0
    assert (a.scale_granularity, a.reserved, a.k_amax, a.v_amax) == (0, 0, None, None)
    # the hand-written MLAKV_PACK_ARGS_INIT
    want = _capi.PackArgs()
    want.struct_size = size
    want.k_scale_inv = want.v_scale_inv = 1.0
    assert bytes(a) == bytes(want)

    # the 0.1 entry point: 456 bytes, struct_size 456, nothing past them
    buf = (ctypes.c_uint8 * 1024)()
    ctypes.memset(buf, 0x5A, 1024)
    L.lib.mlakv_pack_args_init(buf)
    assert ctypes.c_size_t.from_buffer(buf).value == _capi.PACK_ARGS_SIZE_0_1 == 456
    assert bytes(buf[8:456]) == bytes(want)[8:456]
    assert all(b == 0x5A for b in buf[456:])

    # a larger struct (a newer caller): the unknown bytes are zeroed, struct_size is the size given
    ctypes.memset(buf, 0x5A, 1024)
    assert L.lib.mlakv_pack_args_init_sized(buf, 600) == 0
    assert ctypes.c_size_t.from_buffer(buf).value == 600
    assert bytes(buf[8:size]) == bytes(want)[8:]
    assert all(b == 0 for b in buf[size:600]) and all(b == 0x5A for b in buf[600:])

    # below the 0.1 size: MLAKV_ERR_STRUCT_SIZE, nothing written
    ctypes.memset(buf, 0x5A, 1024)
    assert L.lib.mlakv_pack_args_init_sized(buf, 455) == 2
    assert all(b == 0x5A for b in buf)
    assert L.lib.mlakv_pack_args_init_sized(buf, 456) == 0
    assert ctypes.c_size_t.from_buffer(buf).value == 456 and all(b == 0x5A for b in buf[456:])


def _header_status_codes(path):
    import re
    codes = {}
    for m in re.finditer(r"^#define\s+(MLAKV_(?:OK|ERR_\w+))\s+(-?\d+)\b", path.read_text(),
                         re.M):
        codes[m.group(1)] = int(m.group(2))
    return codes


@pytest.mark.parametrize("header", header_paths(), ids=lambda p: str(p))
def test_every_status_of_the_header_is_known(header):
    """The binding's status list is the header's, name for name and code for code."""
    codes = _header_status_codes(header)
    assert codes["MLAKV_OK"] == 0 and codes["MLAKV_ERR_OVERLAP_UNDECIDED"] == 22
    assert {v: k for k, v in codes.items()} == mlakv.STATUS_NAMES
    for name, code in codes.items():
        if code:
            cls = mlakv.error_class(code)
            assert cls is not mlakv.Error and cls.status == code, name
            assert getattr(mlakv, cls.__name__) is cls and cls.__name__ in mlakv.__all__
            assert mlakv.status_string(code).split(":")[0] == name


def test_status_string_and_names_for_every_status():
    for code in range(0, max(mlakv.STATUS_NAMES) + 1):
        text = mlakv.status_string(code)
        assert text.split(":")[0] == mlakv.STATUS_NAMES[code]
    assert "UNKNOWN" in mlakv.status_string(999)


@pytest.mark.parametrize("code", list(range(1, 23)))
def test_every_status_has_its_error_class(code):
    cls = mlakv.error_class(code)
    assert issubclass(cls, mlakv.Error) and cls is not mlakv.Error
    assert cls.status == code
    e = _capi.lib().error(code, "mlakv_test")
    assert type(e) is cls
    assert e.status == code and e.name == mlakv.STATUS_NAMES[code]
    assert e.function == "mlakv_test"
    assert mlakv.STATUS_NAMES[code] in str(e)
    # exported under its own name
    assert getattr(mlakv, cls.__name__) is cls
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is cls and e2.status == code and e2.message == e.message


def test_error_class_specifics():
    assert mlakv.error_class(5) is mlakv.ShapeError
    assert mlakv.error_class(8) is mlakv.OverlapError
    assert mlakv.error_class(3) is mlakv.DtypeError
    assert mlakv.error_class(20) is mlakv.NoTableRowError
    assert mlakv.error_class(21) is mlakv.TableDeviceError
    assert mlakv.TableDeviceError.status == 21
    assert mlakv.STATUS_NAMES[21] == "MLAKV_ERR_TABLE_DEVICE"
    assert mlakv.TableDeviceError(21, "x").name == "MLAKV_ERR_TABLE_DEVICE"
    assert mlakv.error_class(22) is mlakv.OverlapUndecidedError
    assert mlakv.OverlapUndecidedError.status == 22
    assert mlakv.STATUS_NAMES[22] == "MLAKV_ERR_OVERLAP_UNDECIDED"
    assert issubclass(mlakv.OverlapUndecidedError, ValueError)
    assert not issubclass(mlakv.OverlapUndecidedError, mlakv.OverlapError)
    assert issubclass(mlakv.ShapeError, ValueError)
    assert issubclass(mlakv.DtypeError, TypeError)
    assert mlakv.error_class(12345) is mlakv.Error  # a status appended by a newer library
    e = mlakv.Error(12345, "something new")
    assert e.name == "MLAKV_STATUS_12345" and e.status == 12345


def test_backends():
    infos = mlakv.backends()
    names = [b.name for b in infos]
    assert sorted(names) == ["cuda", "hip", "reference"]
    ref = next(b for b in infos if b.name == "reference")
    assert ref.backend == mlakv.BACKEND_REFERENCE and ref.compiled and ref.usable
    assert ref.device_count == 1
    for b in infos:
        if not b.usable:
            assert b.detail  # says why


# ---- dispatch tables -------------------------------------------------------------------------
def _variant(row: str) -> str:
    import re
    m = re.search(r"\bvariant=(\S+)", row)
    assert m, row
    return m.group(1)


def test_dispatch_table_get_set_reset_and_parse_error():
    orig = mlakv.get_dispatch_table("reference")
    rows = [r for r in orig.splitlines() if r.strip() and not r.startswith("#")]
    general = [r for r in rows if "dims=any" in r]
    assert rows and general, orig
    s, h = 2, 3
    kn = np.zeros((s, h, 16), np.float32)
    kp = np.zeros((s, 8), np.float32)
    v = np.zeros((s, h, 16), np.float32)
    plan0 = mlakv.plan(kn, kp, v)
    assert plan0.startswith("backend=reference") and "dims=16,8,16" in plan0
    assert any("variant=" + _variant(r) in plan0 for r in rows)
    only = general[0].split("#")[0].strip()
    try:
        mlakv.set_dispatch_table("reference", only + "\n")
        now = mlakv.get_dispatch_table(mlakv.BACKEND_REFERENCE)
        assert [r.split("#")[0].strip() for r in now.splitlines()
                if r.strip() and not r.startswith("#")] == [only]
        assert "variant=" + _variant(only) in mlakv.plan(kn, kp, v)
        with pytest.raises(mlakv.TableParseError) as ei:
            mlakv.set_dispatch_table("reference", "this is not a table row\n")
        assert ei.value.status == 17 and ei.value.message
        assert mlakv.get_dispatch_table("reference") == now  # the old table stays
    finally:
        mlakv.reset_dispatch_table("reference")
    assert mlakv.get_dispatch_table("reference") == orig
    assert mlakv.plan(kn, kp, v) == plan0


def test_dispatch_table_errors():
    with pytest.raises(mlakv.NoSuchBackendError) as ei:
        mlakv.get_dispatch_table(42)
    assert ei.value.status == 12
    with pytest.raises(mlakv.NoSuchBackendError):
        mlakv.get_dispatch_table("auto")  # AUTO has no table
    with pytest.raises(mlakv.InvalidArgumentError):
        mlakv.get_dispatch_table("no-such-name")
    for b in mlakv.backends():
        if not b.compiled:
            with pytest.raises(mlakv.BackendUnavailableError) as ei:
                mlakv.get_dispatch_table(b.name)
            assert ei.value.status == 13 and b.name in ei.value.message


def test_load_dispatch_table_errors(tmp_path):
    missing = tmp_path / "no-such-table.txt"
    # the reference backend has no per-device tables (GPU backends do); str or PathLike paths
    for path in (str(missing), missing):
        with pytest.raises(mlakv.InvalidArgumentError) as ei:
            mlakv.load_dispatch_table("reference", path)
        assert ei.value.status == 11 and ei.value.name == "MLAKV_ERR_INVALID_ARGUMENT"
        assert ei.value.message and "per-device tables" in ei.value.message
        assert ei.value.function == "mlakv_dispatch_table_load"
    with pytest.raises(mlakv.InvalidArgumentError):
        mlakv.load_dispatch_table(mlakv.BACKEND_REFERENCE, missing)
    # an unknown backend code, and AUTO (no table of its own)
    with pytest.raises(mlakv.NoSuchBackendError) as ei:
        mlakv.load_dispatch_table(7, missing)
    assert ei.value.status == 12
    with pytest.raises(mlakv.NoSuchBackendError):
        mlakv.load_dispatch_table("auto", missing)
    with pytest.raises(mlakv.InvalidArgumentError):
        mlakv.load_dispatch_table("no-such-name", missing)
    # a NUL byte in the path: refused before the C call
    with pytest.raises(mlakv.InvalidArgumentError) as ei:
        mlakv.load_dispatch_table("reference", str(missing) + "\0x")
    assert ei.value.function is None and "NUL" in ei.value.message
    # GPU backends that are not compiled into this library: unavailable
    for b in mlakv.backends():
        if b.name != "reference" and not b.compiled:
            with pytest.raises(mlakv.BackendUnavailableError) as ei:
                mlakv.load_dispatch_table(b.name, missing)
            assert ei.value.status == 13 and b.name in ei.value.message


def test_load_dispatch_table_cuda_not_compiled(tmp_path):
    cuda = next(b for b in mlakv.backends() if b.backend == mlakv.BACKEND_CUDA)
    if cuda.compiled:
        pytest.skip("the cuda backend is compiled into this library")
    with pytest.raises(mlakv.BackendUnavailableError) as ei:
        mlakv.load_dispatch_table("cuda", tmp_path / "table.txt")
    assert ei.value.status == 13 and ei.value.name == "MLAKV_ERR_BACKEND_UNAVAILABLE"
    assert ei.value.message and "cuda" in ei.value.message


# ---- finding the library ------------------------------------------------------------------------
def test_library_not_found_names_the_path_and_the_fix(tmp_path):
    env = env_without_library()
    env["MLAKV_LIBRARY"] = str(tmp_path / "nowhere" / "libmlakv.so")
    r = run_py("""
        import mlakv
        try:
            mlakv.version()
        except mlakv.LibraryNotFoundError as e:
            print("ERR", e)
        else:
            print("LOADED")
        """, env)
    assert r.returncode == 0, r.stderr
    assert "ERR" in r.stdout and "nowhere" in r.stdout and "MLAKV_LIBRARY" in r.stdout
    assert "pkg-config" in r.stdout  # the how-to-fix text


def test_library_env_folder_without_library(tmp_path):
    env = env_without_library()
    env["MLAKV_LIBRARY"] = str(tmp_path)
    r = run_py("""
        import mlakv
        try:
            mlakv.version()
        except mlakv.LibraryNotFoundError as e:
            print("ERR", e)
        """, env)
    assert "ERR" in r.stdout and "is a folder without" in r.stdout, r.stdout + r.stderr


def test_library_not_found_without_env_lists_every_place(tmp_path):
    import ctypes.util
    if ctypes.util.find_library("mlakv"):
        pytest.skip("a libmlakv is installed system-wide here: the search would find it")
    env = env_without_library()
    env["PKG_CONFIG_PATH"] = str(tmp_path)
    env["PKG_CONFIG_LIBDIR"] = str(tmp_path)
    r = run_py("""
        import mlakv
        try:
            mlakv.version()
        except mlakv.LibraryNotFoundError as e:
            print("ERR", e)
        else:
            print("LOADED", mlakv.library_path())
        """, env)
    if "LOADED" in r.stdout:
        pytest.skip("the system loader finds a libmlakv here: " + r.stdout)
    out = r.stdout
    for needle in ("MLAKV_LIBRARY: not set", "bundled copy", "find_library", "pkg-config",
                   "libmlakv.so.0"):
        assert needle in out, out


def test_import_works_without_library_or_torch(tmp_path):
    env = env_without_library()
    env["MLAKV_LIBRARY"] = str(tmp_path / "missing.so")
    r = run_py("""
        import sys
        sys.modules["torch"] = None  # make `import torch` fail
        import mlakv
        print("OK", mlakv.__version__, "torch" in dir(mlakv))
        try:
            import mlakv.torch
        except ImportError as e:
            print("NOTORCH", e)
        """, env)
    assert r.returncode == 0, r.stderr
    assert "OK 0.2.0" in r.stdout and "NOTORCH" in r.stdout and "needs PyTorch" in r.stdout


def test_library_env_folder_and_explicit_load(tmp_path):
    env = env_without_library()
    env["MLAKV_LIBRARY"] = str(Path(lib_path()).parent)
    r = run_py("import mlakv; print('V', mlakv.version(), mlakv.library_path())", env)
    assert r.returncode == 0, r.stderr
    assert "V 200" in r.stdout
    env["MLAKV_LIBRARY"] = str(tmp_path / "missing.so")
    r = run_py("import mlakv; print('V', mlakv.load_library(%r))" % lib_path(), env)
    assert r.returncode == 0, r.stderr
    assert "V 0.2.0" in r.stdout


def test_library_found_through_pkg_config(tmp_path):
    lib = Path(lib_path()).resolve()
    pc = lib.parent / "pkgconfig" / "mlakv.pc"
    if not pc.exists() or not (shutil.which("pkg-config") or shutil.which("pkgconf")):
        pytest.skip("no pkg-config or no %s next to the library" % pc)
    import ctypes.util
    if ctypes.util.find_library("mlakv"):
        pytest.skip("a system-wide libmlakv would be found first")
    env = env_without_library()
    env["PKG_CONFIG_PATH"] = str(pc.parent)
    r = run_py("""
        import mlakv
        from mlakv import _capi
        L = _capi.lib()
        print("HOW", L.how, L.path)
        """, env)
    assert r.returncode == 0, r.stderr
    assert "HOW pkg-config" in r.stdout, r.stdout


# ---- a fake library: the ABI checks --------------------------------------------------------------
# FAKE_SIZE: the struct_size its init reports; FAKE_SIZED: it has mlakv_pack_args_init_sized
# (0.2) and FAKE_OVERRUN bytes more than it is given are written by it.
FAKE_C = r"""
#include <stddef.h>
#include <stdint.h>
#include <string.h>
typedef struct { size_t struct_size; unsigned char rest[448]; } args_t;
int32_t mlakv_version(void) { return FAKE_VERSION; }
const char* mlakv_version_string(void) { return "fake"; }
static void fill(unsigned char* p, size_t n) {
  args_t a; float one = 1.0f; memset(&a, 0, sizeof a); a.struct_size = FAKE_SIZE;
  memcpy(a.rest + 400, &one, 4); memcpy(a.rest + 404, &one, 4);
  memset(p, 0, n); memcpy(p, &a, sizeof a < n ? sizeof a : n);
}
void mlakv_pack_args_init(void* p) { fill((unsigned char*)p, 456); }
#ifdef FAKE_SIZED
int32_t mlakv_pack_args_init_sized(void* p, size_t n) {
  if (n < 456) return 2;
  fill((unsigned char*)p, n + FAKE_OVERRUN);
  if (FAKE_SIZE == 456) ((args_t*)p)->struct_size = n;
  return 0;
}
#endif
int32_t mlakv_pack_fp8(const void* a) { (void)a; return 0; }
int32_t mlakv_pack_fp8_plan(const void* a, char* b, size_t n, size_t* k) { return 0; }
const char* mlakv_status_string(int32_t s) { return "x"; }
const char* mlakv_last_error(void) { return ""; }
int32_t mlakv_backend_count(void) { return 0; }
int32_t mlakv_backend_get_info(int32_t i, void* p) { return 11; }
int32_t mlakv_dispatch_table_get(int32_t b, char* buf, size_t n, size_t* k) { return 12; }
int32_t mlakv_dispatch_table_set(int32_t b, const char* t) { return 12; }
int32_t mlakv_dispatch_table_reset(int32_t b) { return 12; }
int32_t mlakv_dispatch_table_load(int32_t b, const char* p) { return 12; }
"""


def _build_fake(tmp_path, version, size, sized=False, overrun=0):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler to build a fake library")
    src = tmp_path / "fake.c"
    src.write_text(FAKE_C)
    out = tmp_path / ("libfake_%d_%d_%d_%d.so" % (version, size, sized, overrun))
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(src),
                    "-DFAKE_VERSION=%d" % version, "-DFAKE_SIZE=%d" % size,
                    "-DFAKE_OVERRUN=%d" % overrun] + (["-DFAKE_SIZED"] if sized else []),
                   check=True)
    return str(out)


def test_abi_major_mismatch_is_refused(tmp_path):
    fake = _build_fake(tmp_path, 10100, 456)
    with pytest.raises(mlakv.LibraryError) as ei:
        _capi.load(fake)
    assert "ABI major 1" in str(ei.value) and "ABI major 0" in str(ei.value)


def test_struct_size_mismatch_is_refused(tmp_path):
    fake = _build_fake(tmp_path, 100, 400)
    with pytest.raises(mlakv.LibraryError) as ei:
        _capi.load(fake)
    assert "struct_size = 400" in str(ei.value)
    fake = _build_fake(tmp_path, 200, 400, sized=True)
    with pytest.raises(mlakv.LibraryError) as ei:
        _capi.load(fake)
    assert "struct_size = 400" in str(ei.value)


def test_init_writing_past_the_struct_is_refused(tmp_path):
    fake = _build_fake(tmp_path, 200, 456, sized=True, overrun=8)
    with pytest.raises(mlakv.LibraryError) as ei:
        _capi.load(fake)
    assert "wrote past the 480 bytes" in str(ei.value)


def test_version_0_2_without_init_sized_is_refused(tmp_path):
    fake = _build_fake(tmp_path, 200, 456, sized=False)
    with pytest.raises(mlakv.LibraryError) as ei:
        _capi.load(fake)
    assert "mlakv_pack_args_init_sized" in str(ei.value)


def test_fake_0_2_library_loads(tmp_path):
    fake = _build_fake(tmp_path, 200, 456, sized=True)
    L = _capi.load(fake)
    assert L.version == 200 and L.pack_args_size == 480 and L.has_0_2_fields
    a = L.init_args(_capi.PackArgs())
    assert a.struct_size == 480 and a.k_scale_inv == 1.0 and a.scale_granularity == 0


def test_fake_0_1_library_loads_with_the_0_1_init(tmp_path):
    """A 0.1 library (no mlakv_pack_args_init_sized): the binding fills the 0.1 layout through
    mlakv_pack_args_init, zeroes the 0.2 fields and passes its own struct_size (a 0.1 library
    accepts larger structs whose unknown bytes are zero)."""
    fake = _build_fake(tmp_path, 100, 456)
    L = _capi.load(fake)
    assert L.version == 100 and L.pack_args_size == 480 and not L.has_0_2_fields
    a = _capi.PackArgs()
    ctypes.memset(ctypes.addressof(a), 0x5A, ctypes.sizeof(a))
    L.init_args(a)
    assert a.struct_size == 480 and a.k_scale_inv == 1.0 and a.v_scale_inv == 1.0
    assert bytes(a)[456:] == bytes(24)


def test_missing_symbol_is_refused(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler")
    src = tmp_path / "empty.c"
    src.write_text("int not_mlakv(void) { return 0; }\n")
    out = tmp_path / "libempty.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    with pytest.raises(mlakv.LibraryError) as ei:
        _capi.load(str(out))
    assert "symbol is missing" in str(ei.value)


def test_raw_api_error_leaves_outputs_untouched():
    """The bare C API (no binding logic): a shape mismatch, status and message."""
    from conftest import raw_pack, last_error
    s, h = 3, 2
    kn = np.ones((s, h, 16), np.float32)
    kp = np.ones((s, 8), np.float32)
    v = np.ones((s - 1, h, 16), np.float32)
    ko, vo = poisoned((s, h, 24)), poisoned((s, h, 16))
    st = raw_pack(kn, kp, v, ko, vo, 3, "e4m3fn")
    assert st == 5
    assert "token counts differ" in last_error()
    assert (ko == POISON).all() and (vo == POISON).all()
