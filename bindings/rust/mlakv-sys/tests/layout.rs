//! Layout test: compiles `tests/layout.c` with the system C compiler against the installed
//! `mlakv/mlakv.h`, runs it, and compares every struct size and alignment, every field offset and
//! size, and every constant it prints with the Rust declarations of this crate. Every line the C
//! program prints must have a Rust counterpart with the same value, and every Rust entry must be
//! printed by the C program.
//!
//! The C compiler is `$CC`, else `cc`. Where no C compiler can be started, or the build script
//! found no include directory, the comparison prints `SKIPPED` and returns (the other tests in
//! this file still run). Set `MLAKV_REQUIRE_LAYOUT_TEST=1` to turn such a skip into a failure.

use mlakv_sys::*;
use std::collections::BTreeMap;
use std::ffi::CStr;
use std::mem::{align_of, size_of, MaybeUninit};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Offset of a field, without `std::mem::offset_of!` (Rust 1.77) so that Rust 1.63 builds it.
macro_rules! offset_of {
    ($ty:ty, $field:ident) => {{
        let value = MaybeUninit::<$ty>::uninit();
        let base = value.as_ptr();
        // SAFETY: addr_of! computes the field's address without reading or referencing it.
        let field = unsafe { std::ptr::addr_of!((*base).$field) };
        (field as *const u8 as usize) - (base as *const u8 as usize)
    }};
}

/// Size of a field's type.
macro_rules! field_size {
    ($ty:ty, $field:ident) => {{
        fn pointee_size<T>(_: *const T) -> usize {
            size_of::<T>()
        }
        let value = MaybeUninit::<$ty>::uninit();
        let base = value.as_ptr();
        // SAFETY: as above.
        pointee_size(unsafe { std::ptr::addr_of!((*base).$field) })
    }};
}

macro_rules! rust_layout {
    ($map:ident; $( $ty:ident { $($field:ident),* } )*) => {
        $(
            $map.insert(format!("size {}", stringify!($ty)), size_of::<$ty>() as i64);
            $map.insert(format!("align {}", stringify!($ty)), align_of::<$ty>() as i64);
            $(
                $map.insert(
                    format!("offset {}.{}", stringify!($ty), stringify!($field)),
                    offset_of!($ty, $field) as i64,
                );
                $map.insert(
                    format!("fsize {}.{}", stringify!($ty), stringify!($field)),
                    field_size!($ty, $field) as i64,
                );
            )*
        )*
    };
}

macro_rules! rust_consts {
    ($map:ident; $($c:ident),* $(,)?) => {
        $( $map.insert(format!("const {}", stringify!($c)), $c as i64); )*
    };
}

fn rust_values() -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    rust_layout! { m;
        mlakv_tensor { data, dtype, ndim, shape, strides }
        mlakv_pack_args {
            struct_size, k_nope, k_pe, v, k_out, v_out, k_scale_inv, v_scale_inv,
            k_scale_inv_ptr, v_scale_inv_ptr, backend, device, stream, pdl, flags,
            scale_granularity, reserved, k_amax, v_amax
        }
        mlakv_backend_info { struct_size, backend, name, compiled, usable, device_count, detail }
        mlakv_status {}
        mlakv_dtype {}
        mlakv_backend {}
        mlakv_pdl_mode {}
        mlakv_scale_granularity {}
    }
    rust_consts! { m;
        MLAKV_VERSION_MAJOR, MLAKV_VERSION_MINOR, MLAKV_VERSION_PATCH, MLAKV_VERSION,
        MLAKV_OK, MLAKV_ERR_NULL_POINTER, MLAKV_ERR_STRUCT_SIZE, MLAKV_ERR_DTYPE, MLAKV_ERR_RANK,
        MLAKV_ERR_SHAPE, MLAKV_ERR_STRIDE, MLAKV_ERR_ALIGNMENT, MLAKV_ERR_OVERLAP,
        MLAKV_ERR_SIZE_OVERFLOW, MLAKV_ERR_UNSUPPORTED_DIMS, MLAKV_ERR_INVALID_ARGUMENT,
        MLAKV_ERR_NO_SUCH_BACKEND, MLAKV_ERR_BACKEND_UNAVAILABLE, MLAKV_ERR_DEVICE,
        MLAKV_ERR_LAUNCH, MLAKV_ERR_BUFFER_TOO_SMALL, MLAKV_ERR_TABLE_PARSE,
        MLAKV_ERR_MEMORY_SPACE, MLAKV_ERR_INTERNAL, MLAKV_ERR_NO_TABLE_ROW, MLAKV_ERR_TABLE_DEVICE,
        MLAKV_ERR_OVERLAP_UNDECIDED,
        MLAKV_DTYPE_INVALID, MLAKV_DTYPE_BF16, MLAKV_DTYPE_FP16, MLAKV_DTYPE_FP32,
        MLAKV_DTYPE_E4M3FN, MLAKV_DTYPE_E5M2, MLAKV_DTYPE_E4M3FNUZ, MLAKV_DTYPE_E5M2FNUZ,
        MLAKV_BACKEND_AUTO, MLAKV_BACKEND_REFERENCE, MLAKV_BACKEND_CUDA, MLAKV_BACKEND_HIP,
        MLAKV_PDL_AUTO, MLAKV_PDL_ON, MLAKV_PDL_OFF,
        MLAKV_FLAG_TRUST_POINTERS, MLAKV_FLAGS_KNOWN, MLAKV_SCALE_PER_TENSOR, MLAKV_SCALE_PER_HEAD,
        MLAKV_PACK_ARGS_SIZE_0_1, MLAKV_MAX_RANK,
    }
    m
}

fn skip_or_fail(why: &str) {
    let required = std::env::var_os("MLAKV_REQUIRE_LAYOUT_TEST").map_or(false, |v| v != "0");
    if required {
        panic!(
            "layout test cannot run ({}) and MLAKV_REQUIRE_LAYOUT_TEST is set",
            why
        );
    }
    println!("SKIPPED: C layout comparison: {}", why);
    eprintln!("SKIPPED: C layout comparison: {}", why);
}

/// The include directory the build script found (or `MLAKV_INCLUDE_DIR` at run time); "" if none.
fn include_dir() -> String {
    let include = option_env!("MLAKV_SYS_INCLUDE_DIR").unwrap_or("");
    match std::env::var("MLAKV_INCLUDE_DIR") {
        Ok(dir) if !dir.is_empty() => dir,
        _ => include.to_string(),
    }
}

/// Compiles and runs layout.c; `Ok(None)` means "skip" (no C compiler or no header).
fn c_values() -> Result<Option<BTreeMap<String, i64>>, String> {
    let include = include_dir();
    if include.is_empty() {
        skip_or_fail(
            "no include directory: build.rs found none (set MLAKV_INCLUDE_DIR=<prefix>/include)",
        );
        return Ok(None);
    }
    let cc = std::env::var("CC")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "cc".into());
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("layout.c");
    let exe: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mlakv_layout_probe");
    let compiled = Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror"])
        .arg(format!("-I{}", include))
        .arg(&source)
        .arg("-o")
        .arg(&exe)
        .output();
    let compiled = match compiled {
        Ok(out) => out,
        Err(e) => {
            skip_or_fail(&format!("no C compiler: cannot start `{}`: {}", cc, e));
            return Ok(None);
        }
    };
    if !compiled.status.success() {
        return Err(format!(
            "`{} ... {}` failed:\n{}{}",
            cc,
            source.display(),
            String::from_utf8_lossy(&compiled.stdout),
            String::from_utf8_lossy(&compiled.stderr)
        ));
    }
    let run = Command::new(&exe)
        .output()
        .map_err(|e| format!("running {}: {}", exe.display(), e))?;
    if !run.status.success() {
        return Err(format!("{} exited with {}", exe.display(), run.status));
    }
    let mut map = BTreeMap::new();
    for line in String::from_utf8_lossy(&run.stdout).lines() {
        let (key, value) = match line.rsplit_once(' ') {
            Some(kv) => kv,
            None => return Err(format!("bad line from the C program: {:?}", line)),
        };
        let value: i64 = value
            .parse()
            .map_err(|_| format!("bad value in {:?}", line))?;
        if map.insert(key.to_string(), value).is_some() {
            return Err(format!("duplicate key {:?}", key));
        }
    }
    Ok(Some(map))
}

#[test]
fn layout_matches_the_c_compiler() {
    let c = match c_values() {
        Ok(Some(c)) => c,
        Ok(None) => return,
        Err(e) => panic!("{}", e),
    };
    let rust = rust_values();
    let mut problems = Vec::new();
    for (key, c_value) in &c {
        match rust.get(key) {
            Some(r) if r == c_value => {}
            Some(r) => problems.push(format!("{}: C {} != Rust {}", key, c_value, r)),
            None => problems.push(format!("{}: printed by C, not checked in Rust", key)),
        }
    }
    for key in rust.keys() {
        if !c.contains_key(key) {
            problems.push(format!("{}: in Rust, not printed by layout.c", key));
        }
    }
    assert!(
        problems.is_empty(),
        "layout mismatches:\n{}",
        problems.join("\n")
    );
    // 3 structs and 5 typedefs (size + align each), 31 fields (offset + size each), 48 constants.
    assert_eq!(c.len(), 2 * 8 + 2 * 31 + 48, "unexpected number of entries");
    println!("layout: {} entries match the C compiler", c.len());

    // every status code the header defines is printed by layout.c (and so declared here)
    let header = Path::new(&include_dir()).join("mlakv").join("mlakv.h");
    let text = std::fs::read_to_string(&header)
        .unwrap_or_else(|e| panic!("reading {}: {}", header.display(), e));
    let mut statuses = 0;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("#define") {
            continue;
        }
        let name = words.next().unwrap_or("");
        if name != "MLAKV_OK" && !name.starts_with("MLAKV_ERR_") {
            continue;
        }
        let value: i64 = words.next().and_then(|v| v.parse().ok()).expect(line);
        assert_eq!(
            c.get(&format!("const {}", name)),
            Some(&value),
            "{} = {} of the header is not checked by layout.c / declared in mlakv-sys",
            name,
            value
        );
        statuses += 1;
    }
    assert_eq!(
        statuses,
        23,
        "MLAKV_OK and 22 MLAKV_ERR_* codes in {}",
        header.display()
    );
}

#[test]
fn pack_args_init_sized_matches_the_rust_constant() {
    let mut from_c = MaybeUninit::<mlakv_pack_args>::uninit();
    // SAFETY: mlakv_pack_args_init_sized writes exactly the size it is given, the size of the
    // struct; on MLAKV_OK every field is initialised.
    let from_c = unsafe {
        assert_eq!(
            mlakv_pack_args_init_sized(from_c.as_mut_ptr(), size_of::<mlakv_pack_args>()),
            MLAKV_OK
        );
        from_c.assume_init()
    };
    assert_eq!(unsafe { mlakv_version() }, MLAKV_VERSION);
    assert_eq!(from_c.struct_size, size_of::<mlakv_pack_args>());
    assert_eq!(from_c, MLAKV_PACK_ARGS_INIT);
    assert_eq!(from_c, mlakv_pack_args::default());
    assert_eq!(from_c.k_scale_inv, 1.0);
    assert_eq!(from_c.backend, MLAKV_BACKEND_AUTO);
    assert_eq!(from_c.k_nope, MLAKV_TENSOR_INIT);
    assert_eq!(from_c.scale_granularity, MLAKV_SCALE_PER_TENSOR);
    assert!(from_c.k_amax.is_null() && from_c.v_amax.is_null());
}

/// A struct this size, its bytes as the C library left them.
#[repr(C, align(8))]
struct Bytes([u8; 1024]);

#[test]
fn pack_args_init_of_0_1_writes_only_the_0_1_layout() {
    let mut buf = Bytes([0x5A; 1024]);
    // SAFETY: buf is 1024 bytes, 8-aligned; the 0.1 entry point writes 456 of them.
    unsafe { mlakv_pack_args_init(buf.0.as_mut_ptr() as *mut mlakv_pack_args) };
    let size = usize::from_ne_bytes(buf.0[..size_of::<usize>()].try_into().unwrap());
    assert_eq!(size, MLAKV_PACK_ARGS_SIZE_0_1);
    assert!(
        buf.0[MLAKV_PACK_ARGS_SIZE_0_1..].iter().all(|&b| b == 0x5A),
        "mlakv_pack_args_init wrote past the 0.1 layout"
    );
    // the 0.1 part holds the defaults
    let init = MLAKV_PACK_ARGS_INIT;
    // SAFETY: MLAKV_PACK_ARGS_INIT is a plain-data struct of size_of bytes.
    let init_bytes = unsafe {
        std::slice::from_raw_parts(
            &init as *const mlakv_pack_args as *const u8,
            size_of::<mlakv_pack_args>(),
        )
    };
    let w = size_of::<usize>();
    assert_eq!(&buf.0[w..456], &init_bytes[w..456]);

    // the sized function: a larger (newer) struct gets zeros past the library's fields
    let mut buf = Bytes([0x5A; 1024]);
    // SAFETY: 600 <= 1024 bytes.
    let st = unsafe { mlakv_pack_args_init_sized(buf.0.as_mut_ptr() as *mut _, 600) };
    assert_eq!(st, MLAKV_OK);
    assert_eq!(
        usize::from_ne_bytes(buf.0[..size_of::<usize>()].try_into().unwrap()),
        600
    );
    let ours = size_of::<mlakv_pack_args>();
    assert_eq!(&buf.0[w..ours], &init_bytes[w..]);
    assert!(buf.0[ours..600].iter().all(|&b| b == 0));
    assert!(buf.0[600..].iter().all(|&b| b == 0x5A));
    // below the 0.1 size: MLAKV_ERR_STRUCT_SIZE and nothing written
    let mut buf = Bytes([0x5A; 1024]);
    // SAFETY: nothing is written for a size the library refuses.
    let st = unsafe { mlakv_pack_args_init_sized(buf.0.as_mut_ptr() as *mut _, 455) };
    assert_eq!(st, MLAKV_ERR_STRUCT_SIZE);
    assert!(buf.0.iter().all(|&b| b == 0x5A));
    // SAFETY: a NULL struct is refused.
    assert_eq!(
        unsafe { mlakv_pack_args_init_sized(std::ptr::null_mut(), ours) },
        MLAKV_ERR_NULL_POINTER
    );
}

#[test]
fn raw_calls_work() {
    unsafe {
        let version = CStr::from_ptr(mlakv_version_string()).to_str().unwrap();
        assert!(version.starts_with("0.2."), "{}", version);
        let shape = CStr::from_ptr(mlakv_status_string(MLAKV_ERR_SHAPE))
            .to_str()
            .unwrap();
        assert!(shape.starts_with("MLAKV_ERR_SHAPE"), "{}", shape);

        let count = mlakv_backend_count();
        assert!(count >= 1);
        let mut saw_reference = false;
        for i in 0..count {
            let mut info = MLAKV_BACKEND_INFO_INIT;
            assert_eq!(mlakv_backend_get_info(i, &mut info), MLAKV_OK);
            let name = CStr::from_ptr(info.name).to_str().unwrap();
            if info.backend == MLAKV_BACKEND_REFERENCE {
                saw_reference = true;
                assert_eq!(name, "reference");
                assert_eq!((info.compiled, info.usable, info.device_count), (1, 1, 1));
            }
        }
        assert!(saw_reference);

        // A NULL args pointer is an error, with a message, and no crash.
        assert_eq!(mlakv_pack_fp8(std::ptr::null()), MLAKV_ERR_NULL_POINTER);
        let message = CStr::from_ptr(mlakv_last_error()).to_str().unwrap();
        assert!(!message.is_empty());

        // The text-buffer convention: size 0 reports the size needed.
        let mut needed = 0usize;
        let st = mlakv_dispatch_table_get(
            MLAKV_BACKEND_REFERENCE,
            std::ptr::null_mut(),
            0,
            &mut needed,
        );
        assert_eq!(st, MLAKV_ERR_BUFFER_TOO_SMALL);
        assert!(needed > 1);
        let mut buf = vec![0u8; needed];
        let st = mlakv_dispatch_table_get(
            MLAKV_BACKEND_REFERENCE,
            buf.as_mut_ptr() as *mut std::os::raw::c_char,
            buf.len(),
            &mut needed,
        );
        assert_eq!(st, MLAKV_OK);
        assert_eq!(buf[needed - 1], 0);

        // Per-device table files: the reference backend has none; a NULL path is an error.
        let path = b"/nonexistent/mlakv-table.txt\0";
        let st = mlakv_dispatch_table_load(
            MLAKV_BACKEND_REFERENCE,
            path.as_ptr() as *const std::os::raw::c_char,
        );
        assert_eq!(st, MLAKV_ERR_INVALID_ARGUMENT);
        assert_eq!(
            mlakv_dispatch_table_load(MLAKV_BACKEND_REFERENCE, std::ptr::null()),
            MLAKV_ERR_NULL_POINTER
        );
    }
}
