//! Finds the mlakv C library for `mlakv-sys`. Standard library only (crates.io is not needed).
//!
//! 1. `MLAKV_LIB_DIR` (the directory holding `libmlakv.so`) when set, with the headers from
//!    `MLAKV_INCLUDE_DIR` (the directory holding `mlakv/mlakv.h`), or else from
//!    `$MLAKV_LIB_DIR/../include` when that holds the header;
//! 2. otherwise the `pkg-config` program (or `$PKG_CONFIG`) on the `mlakv` package:
//!    `pkg-config --libs-only-L --libs-only-l mlakv` and `pkg-config --cflags-only-I mlakv`
//!    (point `PKG_CONFIG_PATH` at `<prefix>/lib/pkgconfig` for a non-system prefix).
//!    `MLAKV_INCLUDE_DIR`, when set, still overrides the include directory.
//!
//! It emits `cargo:rustc-link-lib=dylib=mlakv` and `cargo:rustc-link-search=native=<dir>`, and the
//! `links = "mlakv"` metadata `cargo:include=<dir>` and `cargo:lib_dir=<dir>`, which the build
//! scripts of crates depending on `mlakv-sys` read as `DEP_MLAKV_INCLUDE` and `DEP_MLAKV_LIB_DIR`.
//!
//! Runtime search path: `cargo test` and `cargo run` put the link-search directories that lie
//! inside the target directory on the dynamic library path of the programs they run (doc-tests
//! included). So that those commands find a `libmlakv.so` outside the system directories without
//! `LD_LIBRARY_PATH`, this script makes a symbolic link `$OUT_DIR/mlakv-lib-N -> <lib dir>` and
//! adds it as a second search directory (after the real one, which the linker uses). Nothing is
//! written into the linked programs (no rpath). Set `MLAKV_NO_RUNTIME_PATH=1` to skip that link.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the library was found.
struct Found {
    /// How it was found, for messages.
    how: String,
    lib_dirs: Vec<PathBuf>,
    libs: Vec<String>,
    include_dirs: Vec<PathBuf>,
}

const HELP: &str = "set MLAKV_LIB_DIR to the directory that holds libmlakv.so (<prefix>/lib) and \
MLAKV_INCLUDE_DIR to the directory that holds mlakv/mlakv.h (<prefix>/include), or make \
`pkg-config mlakv` work (PKG_CONFIG_PATH=<prefix>/lib/pkgconfig; the mlakv.pc file is installed \
by `cmake --install`)";

fn main() {
    for var in &[
        "MLAKV_LIB_DIR",
        "MLAKV_INCLUDE_DIR",
        "MLAKV_NO_RUNTIME_PATH",
        "PKG_CONFIG",
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "PKG_CONFIG_SYSROOT_DIR",
    ] {
        println!("cargo:rerun-if-env-changed={}", var);
    }
    println!("cargo:rerun-if-changed=build.rs");

    let mut found = match env_dir("MLAKV_LIB_DIR") {
        Some(lib_dir) => from_lib_dir(lib_dir),
        None => match from_pkg_config() {
            Ok(found) => found,
            Err(why) => panic!(
                "\n\nmlakv-sys: cannot find the mlakv C library: MLAKV_LIB_DIR is not set and {}.\n\
                 To fix: {}.\n\n",
                why, HELP
            ),
        },
    };
    if let Some(include_dir) = env_dir("MLAKV_INCLUDE_DIR") {
        if !include_dir.join("mlakv").join("mlakv.h").is_file() {
            panic!(
                "\n\nmlakv-sys: MLAKV_INCLUDE_DIR={} does not contain mlakv/mlakv.h.\n\
                 To fix: {}.\n\n",
                include_dir.display(),
                HELP
            );
        }
        found.include_dirs.insert(0, include_dir);
    }
    emit(&found);
}

/// The value of an environment variable naming a directory; unset or empty is `None`.
fn env_dir(name: &str) -> Option<PathBuf> {
    match env::var_os(name) {
        Some(value) if !value.is_empty() => Some(PathBuf::from(value)),
        _ => None,
    }
}

fn from_lib_dir(lib_dir: PathBuf) -> Found {
    if !lib_dir.is_dir() {
        panic!(
            "\n\nmlakv-sys: MLAKV_LIB_DIR={} is not a directory.\nTo fix: {}.\n\n",
            lib_dir.display(),
            HELP
        );
    }
    if !has_mlakv_library(&lib_dir) {
        println!(
            "cargo:warning=mlakv-sys: MLAKV_LIB_DIR={} holds no libmlakv.so, libmlakv.dylib or \
             mlakv.lib; linking will probably fail",
            lib_dir.display()
        );
    }
    let mut include_dirs = Vec::new();
    if let Some(prefix) = lib_dir.parent() {
        let guess = prefix.join("include");
        if guess.join("mlakv").join("mlakv.h").is_file() {
            include_dirs.push(guess);
        }
    }
    Found {
        how: format!("MLAKV_LIB_DIR={}", lib_dir.display()),
        lib_dirs: vec![lib_dir],
        libs: vec!["mlakv".to_string()],
        include_dirs,
    }
}

fn has_mlakv_library(dir: &Path) -> bool {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(_) => return false,
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name == "libmlakv.so"
            || name == "libmlakv.dylib"
            || name == "mlakv.lib"
            || name == "libmlakv.a"
            || name.starts_with("libmlakv.so.")
    })
}

fn pkg_config_program() -> OsString {
    match env::var_os("PKG_CONFIG") {
        Some(p) if !p.is_empty() => p,
        _ => OsString::from("pkg-config"),
    }
}

/// Runs `pkg-config <args> mlakv` and returns its output split into words.
fn pkg_config(args: &[&str]) -> Result<Vec<String>, String> {
    let program = pkg_config_program();
    let output = Command::new(&program).args(args).arg("mlakv").output();
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!(
                "the `{}` program was not found",
                program.to_string_lossy()
            ))
        }
        Err(e) => {
            return Err(format!(
                "running `{}` failed: {}",
                program.to_string_lossy(),
                e
            ))
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "`{} {} mlakv` failed ({}): {}",
            program.to_string_lossy(),
            args.join(" "),
            output.status,
            stderr.trim()
        ));
    }
    Ok(split_words(&String::from_utf8_lossy(&output.stdout)))
}

/// Splits pkg-config output into words; pkg-config escapes a space inside a path as `\ `.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                word.push(next);
            }
        } else if c.is_whitespace() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn from_pkg_config() -> Result<Found, String> {
    let mut lib_dirs = Vec::new();
    let mut libs = Vec::new();
    for word in pkg_config(&["--libs-only-L", "--libs-only-l"])? {
        if let Some(dir) = word.strip_prefix("-L") {
            lib_dirs.push(PathBuf::from(dir));
        } else if let Some(lib) = word.strip_prefix("-l") {
            libs.push(lib.to_string());
        }
    }
    if !libs.iter().any(|l| l == "mlakv") {
        libs.push("mlakv".to_string());
    }
    let mut include_dirs = Vec::new();
    for word in pkg_config(&["--cflags-only-I"])? {
        if let Some(dir) = word.strip_prefix("-I") {
            include_dirs.push(PathBuf::from(dir));
        }
    }
    let version = pkg_config(&["--modversion"])
        .map(|w| w.join(" "))
        .unwrap_or_default();
    Ok(Found {
        how: format!("pkg-config (mlakv {})", version),
        lib_dirs,
        libs,
        include_dirs,
    })
}

fn emit(found: &Found) {
    for dir in &found.lib_dirs {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    for lib in &found.libs {
        println!("cargo:rustc-link-lib=dylib={}", lib);
    }
    if let Some(dir) = found.lib_dirs.first() {
        println!("cargo:lib_dir={}", dir.display());
    }
    // The header directory: `DEP_MLAKV_INCLUDE` for dependents' build scripts, and
    // `MLAKV_SYS_INCLUDE_DIR` (compile-time, `option_env!`) for this crate's layout test.
    match found.include_dirs.first() {
        Some(dir) => {
            println!("cargo:include={}", dir.display());
            println!("cargo:rustc-env=MLAKV_SYS_INCLUDE_DIR={}", dir.display());
        }
        None => println!("cargo:rustc-env=MLAKV_SYS_INCLUDE_DIR="),
    }
    println!("cargo:rustc-env=MLAKV_SYS_FOUND_BY={}", found.how);

    if env::var_os("MLAKV_NO_RUNTIME_PATH").map_or(false, |v| !v.is_empty() && v != "0") {
        return;
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (i, dir) in found.lib_dirs.iter().enumerate() {
        let link = out_dir.join(format!("mlakv-lib-{}", i));
        match runtime_link(dir, &link) {
            Ok(()) => println!("cargo:rustc-link-search=native={}", link.display()),
            Err(e) => println!(
                "cargo:warning=mlakv-sys: could not link {} to {} ({}); `cargo test` will need \
                 LD_LIBRARY_PATH={}",
                link.display(),
                dir.display(),
                e,
                dir.display()
            ),
        }
    }
}

#[cfg(unix)]
fn runtime_link(target: &Path, link: &Path) -> io::Result<()> {
    let target = fs::canonicalize(target)?;
    match fs::symlink_metadata(link) {
        Ok(_) => fs::remove_file(link)?,
        Err(ref e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn runtime_link(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Other,
        "symbolic links are only made on Unix hosts",
    ))
}
