//! Version, backends, plans and dispatch tables.

use mlakv::{Backend, Bf16, Fp8Format, PackArgs, Pdl, Status, Tensor, TensorMut};

#[test]
fn version_matches_the_header() {
    let v = mlakv::version();
    assert_eq!(v, mlakv::header_version());
    assert_eq!(v.to_string(), "0.2.0");
    let s = mlakv::version_string();
    assert!(s.starts_with("0.2.0"), "{}", s);
    assert!(s.contains("reference"), "{}", s);
}

#[test]
fn backends_list_the_reference_backend() {
    let list = mlakv::backends().unwrap();
    assert!(!list.is_empty());
    let reference = list
        .iter()
        .find(|b| b.backend == Backend::Reference)
        .expect("no reference backend");
    assert_eq!(reference.name, "reference");
    assert!(reference.compiled && reference.usable);
    assert_eq!(reference.device_count, 1);
    for b in &list {
        assert!(!b.name.is_empty());
        assert!(b.compiled || !b.usable, "{:?}", b);
        assert_ne!(b.backend, Backend::Auto);
    }
}

#[test]
fn plan_describes_the_call_and_writes_nothing() {
    let (s, h) = (5, 16);
    let kv = vec![Bf16::from_f32(1.0); s * h * 256];
    let pe = vec![Bf16::from_f32(1.0); s * 64];
    let mut k_out = vec![0xAAu8; s * h * 192];
    let mut v_out = vec![0xAAu8; s * h * 128];
    let args = PackArgs::builder()
        .k_nope(Tensor::new(&kv, &[s, h, 128], &[h * 256, 256, 1]).unwrap())
        .v(Tensor::new(&kv[128..], &[s, h, 128], &[h * 256, 256, 1]).unwrap())
        .k_pe(Tensor::contiguous(&pe, &[s, 1, 64]).unwrap())
        .k_out(TensorMut::contiguous(&mut k_out, Fp8Format::E5m2, &[s, h, 192]).unwrap())
        .v_out(TensorMut::contiguous(&mut v_out, Fp8Format::E5m2, &[s, h, 128]).unwrap())
        .pdl(Pdl::Off)
        .device(0)
        .trust_pointers(true)
        .build()
        .unwrap();
    assert_eq!(
        args.backend(),
        Backend::Reference,
        "slice views run on the reference backend"
    );
    let plan = args.plan().unwrap();
    assert!(!plan.contains('\n') && !plan.contains('\0'), "{:?}", plan);
    for needle in [
        "backend=reference",
        "s=5",
        "h=16",
        "dims=128,64,128",
        "bf16->e5m2",
    ]
    .iter()
    {
        assert!(plan.contains(needle), "{:?} lacks {:?}", plan, needle);
    }
    assert!(k_out.iter().chain(&v_out).all(|&b| b == 0xAA));
}

#[test]
fn dispatch_tables_read_replace_and_reset() {
    let table = mlakv::dispatch_table(Backend::Reference).unwrap();
    assert!(!table.is_empty());
    assert!(table.lines().count() >= 1);

    // replacing the table with its own text keeps it
    mlakv::set_dispatch_table(Backend::Reference, &table).unwrap();
    assert_eq!(mlakv::dispatch_table(Backend::Reference).unwrap(), table);

    // a text that does not parse is rejected and the old table stays
    let e = mlakv::set_dispatch_table(Backend::Reference, "this is not a table row\n").unwrap_err();
    assert_eq!(e.status(), Status::TableParse, "{}", e);
    assert!(!e.message().is_empty());
    assert_eq!(mlakv::dispatch_table(Backend::Reference).unwrap(), table);

    // a NUL inside the text is caught in Rust
    let e = mlakv::set_dispatch_table(Backend::Reference, "a\0b").unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("NUL"));

    mlakv::reset_dispatch_table(Backend::Reference).unwrap();
    assert_eq!(mlakv::dispatch_table(Backend::Reference).unwrap(), table);

    let e = mlakv::dispatch_table(Backend::Other(99)).unwrap_err();
    assert_eq!(e.status(), Status::NoSuchBackend, "{}", e);
}

#[test]
fn status_names_and_descriptions() {
    for code in 1..=22 {
        let status = Status::from_code(code);
        assert_eq!(status.code(), code);
        assert_ne!(status, Status::Unknown(code));
        assert!(status.name().starts_with("MLAKV_ERR_"));
        assert!(
            status.description().starts_with(status.name()),
            "{}: {}",
            status.name(),
            status.description()
        );
    }
    assert_eq!(Status::from_code(5), Status::Shape);
    assert_eq!(Status::from_code(8), Status::Overlap);
    assert_eq!(Status::from_code(21), Status::TableDevice);
    assert_eq!(Status::TableDevice.code(), 21);
    assert_eq!(Status::TableDevice.name(), "MLAKV_ERR_TABLE_DEVICE");
    assert!(Status::TableDevice
        .description()
        .starts_with("MLAKV_ERR_TABLE_DEVICE"));
    assert_eq!(Status::from_code(22), Status::OverlapUndecided);
    assert_eq!(Status::OverlapUndecided.code(), 22);
    assert_eq!(
        Status::OverlapUndecided.name(),
        "MLAKV_ERR_OVERLAP_UNDECIDED"
    );
    assert!(Status::OverlapUndecided
        .description()
        .starts_with("MLAKV_ERR_OVERLAP_UNDECIDED"));
    assert_eq!(Status::from_code(23), Status::Unknown(23));
    assert!(!Status::Unknown(23).description().is_empty());
}

/// The `mlakv.h` files to compare with: the one the build found (`MLAKV_INCLUDE_DIR`, set by
/// run_tests.sh) and the source tree's.
fn headers() -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = std::env::var_os("MLAKV_INCLUDE_DIR").filter(|d| !d.is_empty()) {
        out.push(std::path::PathBuf::from(dir).join("mlakv").join("mlakv.h"));
    }
    let tree =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../include/mlakv/mlakv.h");
    if tree.is_file() {
        out.push(tree);
    }
    out
}

#[test]
fn every_status_of_the_header_is_known() {
    let headers = headers();
    assert!(
        !headers.is_empty(),
        "no mlakv.h: set MLAKV_INCLUDE_DIR=<prefix>/include"
    );
    for header in headers {
        let text = std::fs::read_to_string(&header)
            .unwrap_or_else(|e| panic!("reading {}: {}", header.display(), e));
        let mut seen = Vec::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("#define") {
                continue;
            }
            let name = words.next().unwrap_or("");
            if !name.starts_with("MLAKV_ERR_") {
                continue;
            }
            let code: i32 = words.next().and_then(|w| w.parse().ok()).expect(line);
            let status = Status::from_code(code);
            assert_ne!(
                status,
                Status::Unknown(code),
                "{} = {} ({}) has no Status variant",
                name,
                code,
                header.display()
            );
            assert_eq!(status.name(), name, "{}", header.display());
            assert_eq!(status.code(), code);
            seen.push(code);
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..=22).collect::<Vec<i32>>(), "{}", header.display());
    }
}

#[test]
fn load_dispatch_table_errors() {
    let missing = std::env::temp_dir().join("mlakv-rust-test-no-such-table.txt");

    // the reference backend has no per-device tables (GPU backends do)
    let e = mlakv::load_dispatch_table(Backend::Reference, &missing).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument, "{}", e);
    assert_eq!(e.code(), 11);
    assert!(e.message().contains("per-device tables"), "{}", e);

    // an unknown backend code, and Auto (no table of its own)
    let e = mlakv::load_dispatch_table(Backend::Other(7), &missing).unwrap_err();
    assert_eq!(e.status(), Status::NoSuchBackend, "{}", e);
    assert_eq!(e.code(), 12);
    let e = mlakv::load_dispatch_table(Backend::Auto, &missing).unwrap_err();
    assert_eq!(e.status(), Status::NoSuchBackend, "{}", e);

    // a NUL inside the path is caught in Rust
    let e =
        mlakv::load_dispatch_table(Backend::Reference, std::path::Path::new("a\0b")).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("NUL"), "{}", e);

    // GPU backends not compiled into this library are unavailable
    for b in mlakv::backends().unwrap() {
        if b.backend != Backend::Reference && !b.compiled {
            let e = mlakv::load_dispatch_table(b.backend, &missing).unwrap_err();
            assert_eq!(e.status(), Status::BackendUnavailable, "{}", e);
            assert!(e.message().contains(&b.name), "{}", e);
        }
    }
}

#[test]
fn load_dispatch_table_cuda_not_compiled() {
    let list = mlakv::backends().unwrap();
    let cuda = list.iter().find(|b| b.backend == Backend::Cuda);
    match cuda {
        Some(info) if info.compiled => {
            println!("SKIPPED: the cuda backend is compiled into this library");
        }
        _ => {
            let path = std::env::temp_dir().join("mlakv-rust-test-table.txt");
            let e = mlakv::load_dispatch_table(Backend::Cuda, &path).unwrap_err();
            assert_eq!(e.status(), Status::BackendUnavailable, "{}", e);
            assert_eq!(e.code(), 13);
            assert_eq!(e.status().name(), "MLAKV_ERR_BACKEND_UNAVAILABLE");
            assert!(!e.message().is_empty());
        }
    }
}
