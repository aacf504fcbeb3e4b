//! Error paths: each checks the status, the message and that no output byte was written.

mod common;

use std::os::raw::c_void;

use common::POISON;
use mlakv::sys;
use mlakv::{Backend, Bf16, Dtype, Error, Fp8Format, PackArgs, Status, Tensor, TensorMut};

fn last_error() -> String {
    // SAFETY: mlakv_last_error returns a valid NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(sys::mlakv_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn assert_poison(what: &str, bytes: &[u8]) {
    if let Some(i) = bytes.iter().position(|&b| b != POISON) {
        panic!("{}: byte {} was written ({:#04x})", what, i, bytes[i]);
    }
}

fn assert_error(e: &Error, status: Status, message_contains: &[&str]) {
    assert_eq!(e.status(), status, "{}", e);
    assert_eq!(e.code(), status.code());
    assert!(!e.message().is_empty(), "empty message for {:?}", status);
    for needle in message_contains {
        assert!(
            e.message().contains(needle),
            "message {:?} does not mention {:?}",
            e.message(),
            needle
        );
    }
    let shown = e.to_string();
    assert!(shown.starts_with(status.name()), "{}", shown);
    assert!(shown.ends_with(e.message()), "{}", shown);
}

const S: usize = 4;
const H: usize = 8;
const DN: usize = 16;
const DR: usize = 8;
const DV: usize = 16;

fn inputs() -> (Vec<Bf16>, Vec<Bf16>) {
    let kv: Vec<Bf16> = (0..S * H * (DN + DV))
        .map(|i| Bf16::from_f32(i as f32 * 0.25))
        .collect();
    let pe: Vec<Bf16> = (0..S * DR).map(|i| Bf16::from_f32(-(i as f32))).collect();
    (kv, pe)
}

const ROW: [usize; 3] = [H * (DN + DV), DN + DV, 1];

#[test]
fn shape_mismatch_is_status_5_and_writes_nothing() {
    let (kv, pe) = inputs();
    let mut k_out = vec![POISON; S * H * (DN + DR)];
    let mut v_out = vec![POISON; S * H * DV];
    // v claims H/2 heads while k_nope has H
    let mut args = PackArgs::builder()
        .k_nope(Tensor::new(&kv, &[S, H, DN], &ROW).unwrap())
        .v(Tensor::new(&kv[DN..], &[S, H / 2, DV], &ROW).unwrap())
        .k_pe(Tensor::contiguous(&pe, &[S, DR]).unwrap())
        .k_out(TensorMut::contiguous(&mut k_out, Fp8Format::E4m3fn, &[S, H, DN + DR]).unwrap())
        .v_out(TensorMut::contiguous(&mut v_out, Fp8Format::E4m3fn, &[S, H, DV]).unwrap())
        .build()
        .unwrap();
    let e = args.run().unwrap_err();
    assert_error(&e, Status::Shape, &["head"]);
    assert_eq!(
        e.message(),
        last_error(),
        "the message is mlakv_last_error()"
    );
    let plan_error = args.plan().unwrap_err();
    assert_eq!(plan_error, e, "plan validates the same way");
    assert_poison("k_out", &k_out);
    assert_poison("v_out", &v_out);

    // k_out with a wrong last dim (D_nope + D_rope - 1)
    let mut args = PackArgs::builder()
        .k_nope(Tensor::new(&kv, &[S, H, DN], &ROW).unwrap())
        .v(Tensor::new(&kv[DN..], &[S, H, DV], &ROW).unwrap())
        .k_pe(Tensor::contiguous(&pe, &[S, DR]).unwrap())
        .k_out(TensorMut::contiguous(&mut k_out, Fp8Format::E4m3fn, &[S, H, DN + DR - 1]).unwrap())
        .v_out(TensorMut::contiguous(&mut v_out, Fp8Format::E4m3fn, &[S, H, DV]).unwrap())
        .build()
        .unwrap();
    assert_error(&args.run().unwrap_err(), Status::Shape, &["k_out"]);
    assert_poison("k_out", &k_out);
    assert_poison("v_out", &v_out);
}

/// Outputs that overlap each other or an input can only be made from raw pointers (slices
/// cannot alias a `&mut`): the library rejects them with status 8 before writing.
#[test]
fn overlapping_outputs_are_status_8_and_write_nothing() {
    let (kv, pe) = inputs();
    let k_len = S * H * (DN + DR);
    let v_len = S * H * DV;
    let mut buf = vec![POISON; k_len + v_len];
    let base = buf.as_mut_ptr();
    let row = [H * (DN + DV), DN + DV, 1];

    // v_out starts 64 bytes before the end of k_out
    // SAFETY: every view lies inside `kv`, `pe` or `buf`, which outlive the synchronous calls;
    // the calls fail before writing (checked below), and nothing else touches `buf` meanwhile.
    let e = unsafe {
        let mut args = PackArgs::builder()
            .k_nope(
                Tensor::from_raw(kv.as_ptr() as *const c_void, Dtype::Bf16, &[S, H, DN], &row)
                    .unwrap(),
            )
            .v(Tensor::from_raw(
                kv[DN..].as_ptr() as *const c_void,
                Dtype::Bf16,
                &[S, H, DV],
                &row,
            )
            .unwrap())
            .k_pe(
                Tensor::from_raw(
                    pe.as_ptr() as *const c_void,
                    Dtype::Bf16,
                    &[S, DR],
                    &[DR, 1],
                )
                .unwrap(),
            )
            .k_out(
                TensorMut::from_raw(
                    base as *mut c_void,
                    Dtype::E4m3fn,
                    &[S, H, DN + DR],
                    &[H * (DN + DR), DN + DR, 1],
                )
                .unwrap(),
            )
            .v_out(
                TensorMut::from_raw(
                    base.add(k_len - 64) as *mut c_void,
                    Dtype::E4m3fn,
                    &[S, H, DV],
                    &[H * DV, DV, 1],
                )
                .unwrap(),
            )
            .backend(Backend::Reference)
            .build()
            .unwrap();
        assert!(!args.as_raw().k_out.data.is_null());
        args.run().unwrap_err()
    };
    assert_error(&e, Status::Overlap, &[]);
    assert_eq!(e.message(), last_error());
    assert_poison("k_out/v_out buffer", &buf);

    // k_out on top of the k_pe input (memory read as bf16, written as fp8)
    let mut pe_copy: Vec<Bf16> = vec![Bf16(0xAAAA); S * H * (DN + DR)];
    let pe_base = pe_copy.as_mut_ptr() as *mut u8;
    let mut v_out = vec![POISON; v_len];
    let e = unsafe {
        PackArgs::builder()
            .k_nope(
                Tensor::from_raw(kv.as_ptr() as *const c_void, Dtype::Bf16, &[S, H, DN], &row)
                    .unwrap(),
            )
            .v(Tensor::from_raw(
                kv[DN..].as_ptr() as *const c_void,
                Dtype::Bf16,
                &[S, H, DV],
                &row,
            )
            .unwrap())
            .k_pe(
                Tensor::from_raw(pe_base as *const c_void, Dtype::Bf16, &[S, DR], &[DR, 1])
                    .unwrap(),
            )
            .k_out(
                TensorMut::from_raw(
                    pe_base.add(4) as *mut c_void,
                    Dtype::E4m3fn,
                    &[S, H, DN + DR],
                    &[H * (DN + DR), DN + DR, 1],
                )
                .unwrap(),
            )
            .v_out(
                TensorMut::from_raw(
                    v_out.as_mut_ptr() as *mut c_void,
                    Dtype::E4m3fn,
                    &[S, H, DV],
                    &[H * DV, DV, 1],
                )
                .unwrap(),
            )
            .backend(Backend::Reference)
            .build()
            .unwrap()
            .run()
            .unwrap_err()
    };
    assert_error(&e, Status::Overlap, &[]);
    assert!(
        pe_copy.iter().all(|&x| x == Bf16(0xAAAA)),
        "the input was written"
    );
    assert_poison("v_out", &v_out);
}

/// A view past the end of its slice is an Error made in Rust: the C library is never called
/// (its per-thread last error stays what an earlier call left).
#[test]
fn view_past_the_end_fails_before_any_c_call() {
    // leave a known message in mlakv_last_error()
    // SAFETY: NULL is a valid argument (the library reports MLAKV_ERR_NULL_POINTER).
    assert_eq!(
        unsafe { sys::mlakv_pack_fp8(std::ptr::null()) },
        sys::MLAKV_ERR_NULL_POINTER
    );
    let before = last_error();
    assert!(!before.is_empty());

    let (kv, pe) = inputs();
    // v is the second half of each row: starting at element DN, a [S, H, DV] view with the row
    // strides ends exactly at the end of kv; one more token is past it
    assert!(Tensor::new(&kv[DN..], &[S, H, DV], &ROW).is_ok());
    let e = Tensor::new(&kv[DN..], &[S + 1, H, DV], &ROW).unwrap_err();
    assert_error(&e, Status::Shape, &["past the end", "slice"]);
    // k_pe one element wider than its rows: the last row reaches past the end
    let e = Tensor::new(&pe, &[S, DR + 1], &[DR, 1]).unwrap_err();
    assert_error(&e, Status::Shape, &["past the end"]);
    let mut out = vec![POISON; 100];
    let e = TensorMut::new(&mut out, Fp8Format::E4m3fn, &[2, 2, 26], &[50, 26, 1]).unwrap_err();
    assert_error(&e, Status::Shape, &["past the end"]);
    let e = TensorMut::new(&mut out, Fp8Format::E4m3fn, &[2, usize::MAX], &[1, 1]).unwrap_err();
    assert_error(&e, Status::SizeOverflow, &[]);
    assert_poison("out", &out);

    assert_eq!(last_error(), before, "a C function was called");
}

#[test]
fn builder_errors_happen_before_any_c_call() {
    // SAFETY: see above.
    assert_eq!(
        unsafe { sys::mlakv_pack_fp8(std::ptr::null()) },
        sys::MLAKV_ERR_NULL_POINTER
    );
    let before = last_error();

    let (kv, pe) = inputs();
    let mut k_out = vec![POISON; S * H * (DN + DR)];
    let mut v_out = vec![POISON; S * H * DV];
    // v_out unset
    let e = PackArgs::builder()
        .k_nope(Tensor::new(&kv, &[S, H, DN], &ROW).unwrap())
        .v(Tensor::new(&kv[DN..], &[S, H, DV], &ROW).unwrap())
        .k_pe(Tensor::contiguous(&pe, &[S, DR]).unwrap())
        .k_out(TensorMut::contiguous(&mut k_out, Fp8Format::E4m3fn, &[S, H, DN + DR]).unwrap())
        .build()
        .unwrap_err();
    assert_error(&e, Status::NullPointer, &["v_out"]);

    // slice views with a GPU backend
    for &backend in [Backend::Cuda, Backend::Hip, Backend::Other(77)].iter() {
        let e = PackArgs::builder()
            .k_nope(Tensor::new(&kv, &[S, H, DN], &ROW).unwrap())
            .v(Tensor::new(&kv[DN..], &[S, H, DV], &ROW).unwrap())
            .k_pe(Tensor::contiguous(&pe, &[S, DR]).unwrap())
            .k_out(TensorMut::contiguous(&mut k_out, Fp8Format::E4m3fn, &[S, H, DN + DR]).unwrap())
            .v_out(TensorMut::contiguous(&mut v_out, Fp8Format::E4m3fn, &[S, H, DV]).unwrap())
            .backend(backend)
            .build()
            .unwrap_err();
        assert_error(&e, Status::MemorySpace, &["reference backend", "from_raw"]);
    }
    assert_eq!(last_error(), before, "a C function was called");
    assert_poison("k_out", &k_out);
    assert_poison("v_out", &v_out);
}

/// Errors the library finds (rank, dtype, stride, backend), each leaving the outputs untouched.
#[test]
fn library_validation_errors_write_nothing() {
    let (kv, pe) = inputs();
    let kv32: Vec<f32> = kv.iter().map(|x| x.to_f32()).collect();
    let mut k_out = vec![POISON; S * H * (DN + DR)];
    let mut v_out = vec![POISON; S * H * DV];

    macro_rules! expect_error {
        ($status:expr, $needles:expr, $k_nope:expr, $v:expr, $k_pe:expr, $k_fmt:expr, $v_fmt:expr) => {{
            let mut args = PackArgs::builder()
                .k_nope($k_nope)
                .v($v)
                .k_pe($k_pe)
                .k_out(TensorMut::contiguous(&mut k_out, $k_fmt, &[S, H, DN + DR]).unwrap())
                .v_out(TensorMut::contiguous(&mut v_out, $v_fmt, &[S, H, DV]).unwrap())
                .build()
                .unwrap();
            let e = args.run().unwrap_err();
            assert_error(&e, $status, $needles);
            assert_eq!(args.plan().unwrap_err().status(), $status);
            assert_poison("k_out", &k_out);
            assert_poison("v_out", &v_out);
        }};
    }
    let nope = || Tensor::new(&kv, &[S, H, DN], &ROW).unwrap();
    let v = || Tensor::new(&kv[DN..], &[S, H, DV], &ROW).unwrap();
    let k_pe = || Tensor::contiguous(&pe, &[S, DR]).unwrap();
    let e4 = Fp8Format::E4m3fn;

    // k_nope of rank 2
    expect_error!(
        Status::Rank,
        &["k_nope"],
        Tensor::new(&kv, &[S * H, DN], &[DN + DV, 1]).unwrap(),
        v(),
        k_pe(),
        e4,
        e4
    );
    // v in fp32 while k_nope is bf16
    expect_error!(
        Status::Dtype,
        &["v"],
        nope(),
        Tensor::new(&kv32[DN..], &[S, H, DV], &ROW).unwrap(),
        k_pe(),
        e4,
        e4
    );
    // outputs in two different formats
    expect_error!(Status::Dtype, &[], nope(), v(), k_pe(), e4, Fp8Format::E5m2);
    // an inner stride of 2 (the shapes agree: [S, H, DN] every other element of each row)
    expect_error!(
        Status::Stride,
        &["k_nope"],
        Tensor::new(&kv, &[S, H, DN], &[H * (DN + DV), DN + DV, 2]).unwrap(),
        v(),
        k_pe(),
        e4,
        e4
    );
    // k_pe with one token too few
    expect_error!(
        Status::Shape,
        &["token"],
        nope(),
        v(),
        Tensor::contiguous(&pe, &[S - 1, DR]).unwrap(),
        e4,
        e4
    );
}

#[test]
fn backend_errors_with_raw_host_pointers() {
    let (kv, pe) = inputs();
    let mut k_out = vec![POISON; S * H * (DN + DR)];
    let mut v_out = vec![POISON; S * H * DV];
    for &backend in [Backend::Other(99), Backend::Cuda, Backend::Hip].iter() {
        // SAFETY: host memory, in bounds, outliving the synchronous call; a GPU backend either
        // is unavailable here or rejects host pointers (the library checks the memory space).
        let e = unsafe {
            PackArgs::builder()
                .k_nope(
                    Tensor::from_raw(kv.as_ptr() as *const c_void, Dtype::Bf16, &[S, H, DN], &ROW)
                        .unwrap(),
                )
                .v(Tensor::from_raw(
                    kv[DN..].as_ptr() as *const c_void,
                    Dtype::Bf16,
                    &[S, H, DV],
                    &ROW,
                )
                .unwrap())
                .k_pe(
                    Tensor::from_raw(
                        pe.as_ptr() as *const c_void,
                        Dtype::Bf16,
                        &[S, DR],
                        &[DR, 1],
                    )
                    .unwrap(),
                )
                .k_out(
                    TensorMut::from_raw(
                        k_out.as_mut_ptr() as *mut c_void,
                        Dtype::E4m3fn,
                        &[S, H, DN + DR],
                        &[H * (DN + DR), DN + DR, 1],
                    )
                    .unwrap(),
                )
                .v_out(
                    TensorMut::from_raw(
                        v_out.as_mut_ptr() as *mut c_void,
                        Dtype::E4m3fn,
                        &[S, H, DV],
                        &[H * DV, DV, 1],
                    )
                    .unwrap(),
                )
                .backend(backend)
                .build()
                .unwrap()
                .run()
                .unwrap_err()
        };
        match backend {
            Backend::Other(_) => assert_error(&e, Status::NoSuchBackend, &[]),
            _ => assert!(
                e.status() == Status::BackendUnavailable || e.status() == Status::MemorySpace,
                "{:?}: {}",
                backend,
                e
            ),
        }
        assert_poison("k_out", &k_out);
        assert_poison("v_out", &v_out);
    }
}

#[test]
fn zero_tokens_is_a_successful_no_op() {
    let (kv, pe) = inputs();
    let mut k_out = vec![POISON; 8];
    let mut v_out = vec![POISON; 8];
    let mut args = PackArgs::builder()
        .k_nope(Tensor::new(&kv, &[0, H, DN], &ROW).unwrap())
        .v(Tensor::new(&kv[DN..], &[0, H, DV], &ROW).unwrap())
        .k_pe(Tensor::contiguous(&pe, &[0, DR]).unwrap())
        .k_out(TensorMut::contiguous(&mut k_out, Fp8Format::E4m3fn, &[0, H, DN + DR]).unwrap())
        .v_out(TensorMut::contiguous(&mut v_out, Fp8Format::E4m3fn, &[0, H, DV]).unwrap())
        .build()
        .unwrap();
    args.run().unwrap();
    assert_poison("k_out", &k_out);
    assert_poison("v_out", &v_out);
}
