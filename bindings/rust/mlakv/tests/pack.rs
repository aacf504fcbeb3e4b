//! Tests of the safe API against the C library (reference backend, host memory): fixed vectors
//! with hand-derived FP8 bytes, random inputs against an independent oracle and against the
//! library called through the raw `mlakv-sys` API, strided views, scales, and error paths (each
//! checking the status, the message and that the outputs are untouched).

mod common;

use std::os::raw::c_void;

use common::{quantize, Input, Rng, POISON};
use mlakv::sys;
use mlakv::{Backend, Bf16, Dtype, Fp8Format, PackArgs, Tensor, TensorMut, F16};

/// bf16 bits of the special values of the fixed-vector tests.
const NAN: f32 = f32::NAN;
const INF: f32 = f32::INFINITY;

fn p2(k: i32) -> f32 {
    2f32.powi(k)
}

/// One call's geometry: `k_nope` and `v` are the two halves (plus `pad_kv` unused elements) of
/// each row of one `[s, h, dn + dv + pad_kv]` buffer; `k_pe` is `[s, dr]` (or `[s, 1, dr]`) with
/// a token stride of `dr + pad_pe`; the outputs have `pad_out` unused bytes after each token.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    s: usize,
    h: usize,
    dn: usize,
    dr: usize,
    dv: usize,
    pad_kv: usize,
    pad_pe: usize,
    pad_out: usize,
    k_pe_3d: bool,
}

impl Geometry {
    fn dense(s: usize, h: usize, dn: usize, dr: usize, dv: usize) -> Geometry {
        Geometry {
            s,
            h,
            dn,
            dr,
            dv,
            pad_kv: 0,
            pad_pe: 0,
            pad_out: 0,
            k_pe_3d: false,
        }
    }
    fn row(&self) -> usize {
        self.dn + self.dv + self.pad_kv
    }
    fn kv_len(&self) -> usize {
        self.s * self.h * self.row()
    }
    fn pe_stride(&self) -> usize {
        self.dr + self.pad_pe
    }
    fn pe_len(&self) -> usize {
        self.s * self.pe_stride()
    }
    fn k_tok(&self) -> usize {
        self.h * (self.dn + self.dr) + self.pad_out
    }
    fn v_tok(&self) -> usize {
        self.h * self.dv + self.pad_out
    }
    fn k_out_len(&self) -> usize {
        self.s * self.k_tok()
    }
    fn v_out_len(&self) -> usize {
        self.s * self.v_tok()
    }
    fn kv_shape_strides(&self, d: usize) -> ([usize; 3], [usize; 3]) {
        ([self.s, self.h, d], [self.h * self.row(), self.row(), 1])
    }
    fn pe_shape_strides(&self) -> (Vec<usize>, Vec<usize>) {
        if self.k_pe_3d {
            (
                vec![self.s, 1, self.dr],
                vec![self.pe_stride(), self.pe_stride(), 1],
            )
        } else {
            (vec![self.s, self.dr], vec![self.pe_stride(), 1])
        }
    }
    fn k_out_shape_strides(&self) -> ([usize; 3], [usize; 3]) {
        (
            [self.s, self.h, self.dn + self.dr],
            [self.k_tok(), self.dn + self.dr, 1],
        )
    }
    fn v_out_shape_strides(&self) -> ([usize; 3], [usize; 3]) {
        ([self.s, self.h, self.dv], [self.v_tok(), self.dv, 1])
    }

    /// The expected outputs, computed by the oracle; bytes no element maps to stay POISON.
    fn expected(
        &self,
        kv: &Input,
        pe: &Input,
        format: Fp8Format,
        ks: f32,
        vs: f32,
    ) -> (Vec<u8>, Vec<u8>) {
        let mut k = vec![POISON; self.k_out_len()];
        let mut v = vec![POISON; self.v_out_len()];
        for t in 0..self.s {
            for hd in 0..self.h {
                let base = t * self.h * self.row() + hd * self.row();
                let kbase = t * self.k_tok() + hd * (self.dn + self.dr);
                for d in 0..self.dn {
                    k[kbase + d] = quantize(kv.get(base + d), ks, format);
                }
                for d in 0..self.dr {
                    k[kbase + self.dn + d] = quantize(pe.get(t * self.pe_stride() + d), ks, format);
                }
                let vbase = t * self.v_tok() + hd * self.dv;
                for d in 0..self.dv {
                    v[vbase + d] = quantize(kv.get(base + self.dn + d), vs, format);
                }
            }
        }
        (k, v)
    }

    /// The safe API's call.
    fn builder<'a>(
        &self,
        kv: &'a Input,
        pe: &'a Input,
        k_out: &'a mut [u8],
        v_out: &'a mut [u8],
        format: Fp8Format,
    ) -> mlakv::PackArgsBuilder<'a> {
        let (nope_shape, nope_strides) = self.kv_shape_strides(self.dn);
        let (v_shape, v_strides) = self.kv_shape_strides(self.dv);
        let (pe_shape, pe_strides) = self.pe_shape_strides();
        let (ko_shape, ko_strides) = self.k_out_shape_strides();
        let (vo_shape, vo_strides) = self.v_out_shape_strides();
        PackArgs::builder()
            .k_nope(kv.view(0, &nope_shape, &nope_strides))
            .v(kv.view(self.dn, &v_shape, &v_strides))
            .k_pe(pe.view(0, &pe_shape, &pe_strides))
            .k_out(TensorMut::new(k_out, format, &ko_shape, &ko_strides).unwrap())
            .v_out(TensorMut::new(v_out, format, &vo_shape, &vo_strides).unwrap())
    }

    /// The same call through the raw C API, into separate output buffers.
    fn raw_call(
        &self,
        kv: &Input,
        pe: &Input,
        format: Fp8Format,
        ks: f32,
        vs: f32,
    ) -> (Vec<u8>, Vec<u8>) {
        fn tensor(
            data: *mut c_void,
            dtype: Dtype,
            shape: &[usize],
            strides: &[usize],
        ) -> sys::mlakv_tensor {
            let mut t = sys::MLAKV_TENSOR_INIT;
            t.data = data;
            t.dtype = dtype.code();
            t.ndim = shape.len() as i32;
            for i in 0..shape.len() {
                t.shape[i] = shape[i] as i64;
                t.strides[i] = strides[i] as i64;
            }
            t
        }
        let mut k_out = vec![POISON; self.k_out_len()];
        let mut v_out = vec![POISON; self.v_out_len()];
        let elem = kv.dtype().size_in_bytes();
        let (nope_shape, nope_strides) = self.kv_shape_strides(self.dn);
        let (v_shape, v_strides) = self.kv_shape_strides(self.dv);
        let (pe_shape, pe_strides) = self.pe_shape_strides();
        let (ko_shape, ko_strides) = self.k_out_shape_strides();
        let (vo_shape, vo_strides) = self.v_out_shape_strides();
        let mut a = sys::MLAKV_PACK_ARGS_INIT;
        let kv_ptr = kv.as_ptr() as *mut u8;
        a.k_nope = tensor(
            kv_ptr as *mut c_void,
            kv.dtype(),
            &nope_shape,
            &nope_strides,
        );
        a.v = tensor(
            kv_ptr.wrapping_add(self.dn * elem) as *mut c_void,
            kv.dtype(),
            &v_shape,
            &v_strides,
        );
        a.k_pe = tensor(
            pe.as_ptr() as *mut c_void,
            pe.dtype(),
            &pe_shape,
            &pe_strides,
        );
        a.k_out = tensor(
            k_out.as_mut_ptr() as *mut c_void,
            format.dtype(),
            &ko_shape,
            &ko_strides,
        );
        a.v_out = tensor(
            v_out.as_mut_ptr() as *mut c_void,
            format.dtype(),
            &vo_shape,
            &vo_strides,
        );
        a.k_scale_inv = ks;
        a.v_scale_inv = vs;
        a.backend = sys::MLAKV_BACKEND_REFERENCE;
        // SAFETY: every view lies inside its Vec, which outlives the synchronous call.
        let st = unsafe { sys::mlakv_pack_fp8(&a) };
        assert_eq!(st, sys::MLAKV_OK, "raw call failed: {}", last_error());
        (k_out, v_out)
    }
}

fn last_error() -> String {
    // SAFETY: mlakv_last_error returns a valid NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(sys::mlakv_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Index and values of the first difference, for messages.
fn first_diff(got: &[u8], want: &[u8]) -> Option<(usize, u8, u8)> {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .enumerate()
        .find(|(_, (g, w))| g != w)
        .map(|(i, (g, w))| (i, *g, *w))
}

fn assert_bytes(what: &str, got: &[u8], want: &[u8]) {
    if let Some((i, g, w)) = first_diff(got, want) {
        panic!(
            "{}: byte {} is {:#04x}, expected {:#04x} ({} bytes differ)",
            what,
            i,
            g,
            w,
            got.iter().zip(want).filter(|(a, b)| a != b).count()
        );
    }
}

/// Runs one case three ways (safe API, raw C API, oracle) and compares every byte.
fn check_case(g: Geometry, dtype: Dtype, format: Fp8Format, ks: f32, vs: f32, seed: u64) {
    let mut rng = Rng::new(seed);
    let kv = Input::random(dtype, g.kv_len(), &mut rng);
    let pe = Input::random(dtype, g.pe_len(), &mut rng);
    let (want_k, want_v) = g.expected(&kv, &pe, format, ks, vs);

    let mut k_out = vec![POISON; g.k_out_len()];
    let mut v_out = vec![POISON; g.v_out_len()];
    let mut args = g
        .builder(&kv, &pe, &mut k_out, &mut v_out, format)
        .k_scale_inv(ks)
        .v_scale_inv(vs)
        .backend(Backend::Reference)
        .build()
        .unwrap();
    args.run()
        .unwrap_or_else(|e| panic!("{:?} {:?} {:?}: {}", g, dtype, format, e));

    let what = format!("{:?} {:?}->{:?} ks={} vs={}", g, dtype, format, ks, vs);
    assert_bytes(&format!("k_out vs oracle, {}", what), &k_out, &want_k);
    assert_bytes(&format!("v_out vs oracle, {}", what), &v_out, &want_v);
    let (raw_k, raw_v) = g.raw_call(&kv, &pe, format, ks, vs);
    assert_bytes(&format!("k_out vs raw C call, {}", what), &k_out, &raw_k);
    assert_bytes(&format!("v_out vs raw C call, {}", what), &v_out, &raw_v);
}

// ---- fixed vectors ------------------------------------------------------------------------

/// 16 inputs whose FP8 bytes are derived by hand (see the expected tables below).
const SPECIALS: [f32; 16] = [
    1.0,
    -1.0,
    1000.0,
    -1000.0,
    INF,
    -INF,
    NAN,
    -0.0,
    0.0,
    1.0 / 1024.0, // 2^-10
    1.5 / 1024.0, // 1.5 * 2^-10
    2.0 / 1024.0, // 2^-9
    1.0625,       // halfway between 1 and 1.125 (e4m3)
    1.1875,       // halfway between 1.125 and 1.25 (e4m3)
    480.0,        // above 448
    3.0 / 1024.0, // 3 * 2^-10
];

/// The bytes of SPECIALS (scale 1) in each format, derived by hand from the format tables.
fn specials_expected(format: Fp8Format) -> [u8; 16] {
    match format {
        // 1, -1, 1000, -1000, inf, -inf, NaN, -0, 0, 2^-10 (tie -> 0), 1.5*2^-10 -> 2^-9,
        // 2^-9 (smallest subnormal), 1.0625 -> 1.0 (tie to even), 1.1875 -> 1.25, 480 -> 448,
        // 3*2^-10 = 1.5 * 2^-9 -> 2 * 2^-9 (tie to even)
        Fp8Format::E4m3fn => [
            0x38, 0xB8, 0x7E, 0xFE, 0x7E, 0xFE, 0x7F, 0x80, 0x00, 0x00, 0x01, 0x01, 0x38, 0x3A,
            0x7E, 0x02,
        ],
        // e5m2 (bias 15, smallest subnormal 2^-16): 1000 -> 1024 (0x64), inf -> 57344 (0x7B);
        // 2^-10 = 0 01010 00 (0x14), 1.5*2^-10 = 0x16, 2^-9 = 0x18, 1.0625 -> 1.0 (0x3C),
        // 1.1875 -> 1.25 (0x3D), 480 = 1.875 * 2^8 -> tie between 1.75 and 2.0 -> 2^9 (0x60),
        // 3*2^-10 = 1.5 * 2^-9 (0x1A)
        Fp8Format::E5m2 => [
            0x3C, 0xBC, 0x64, 0xE4, 0x7B, 0xFB, 0x7F, 0x80, 0x00, 0x14, 0x16, 0x18, 0x3C, 0x3D,
            0x60, 0x1A,
        ],
        // e4m3fnuz (bias 8, max 240, smallest subnormal 2^-10): 1 = 0x40; 1000, 480, inf
        // saturate to 240 (0x7F); NaN -> 0x80; -0 -> 0x00; 2^-10 = 0x01, 1.5*2^-10 -> tie ->
        // 2^-9 (0x02), 2^-9 = 0x02, 1.0625 -> 0x40, 1.1875 -> 1.25 (0x42), 3*2^-10 = 0x03
        Fp8Format::E4m3fnuz => [
            0x40, 0xC0, 0x7F, 0xFF, 0x7F, 0xFF, 0x80, 0x00, 0x00, 0x01, 0x02, 0x02, 0x40, 0x42,
            0x7F, 0x03,
        ],
        // e5m2fnuz (bias 16, max 57344 = 0x7F): 1 = 0x40, 1000 -> 1024 = 0x68, inf -> 0x7F,
        // NaN -> 0x80, -0 -> 0x00, 2^-10 = 0x18, 1.5*2^-10 = 0x1A, 2^-9 = 0x1C, 1.0625 -> 0x40,
        // 1.1875 -> 0x41, 480 -> 512 = 0x64, 3*2^-10 = 0x1E
        Fp8Format::E5m2fnuz => [
            0x40, 0xC0, 0x68, 0xE8, 0x7F, 0xFF, 0x80, 0x00, 0x00, 0x18, 0x1A, 0x1C, 0x40, 0x41,
            0x64, 0x1E,
        ],
    }
}

#[test]
fn oracle_agrees_with_the_hand_derived_bytes() {
    for &format in Fp8Format::ALL.iter() {
        let want = specials_expected(format);
        for (i, &x) in SPECIALS.iter().enumerate() {
            assert_eq!(
                common::to_fp8(x, format),
                want[i],
                "{:?} of {} (#{})",
                format,
                x,
                i
            );
        }
    }
    // the brief's other examples
    assert_eq!(common::to_fp8(1.0, Fp8Format::E4m3fn), 0x38);
    assert_eq!(common::to_fp8(61440.0, Fp8Format::E5m2), 0x7B);
    assert_eq!(common::to_fp8(p2(-11), Fp8Format::E4m3fn), 0x00);
    assert_eq!(common::to_fp8(-p2(-11), Fp8Format::E4m3fn), 0x80);
    assert_eq!(common::to_fp8(-p2(-12), Fp8Format::E4m3fnuz), 0x00);
    assert_eq!(quantize(1.0, 2.0, Fp8Format::E4m3fn), 0x40);
}

/// The fixed inputs in every input dtype and format, through k_nope, v and k_pe, with scale 1.
#[test]
fn fixed_vectors_all_formats_and_input_types() {
    // k_pe gets the first 8 specials in reverse order; v gets all 16 reversed.
    let (s, h, dn, dr, dv) = (1, 2, 16, 8, 16);
    for &dtype in [Dtype::Bf16, Dtype::Fp16, Dtype::Fp32].iter() {
        for &format in Fp8Format::ALL.iter() {
            let want = specials_expected(format);
            let mut kv_values = Vec::new();
            for _ in 0..h {
                kv_values.extend_from_slice(&SPECIALS);
                kv_values.extend(SPECIALS.iter().rev());
            }
            let pe_values: Vec<f32> = SPECIALS[..dr].iter().rev().cloned().collect();
            let kv = Input::from_f32(dtype, &kv_values);
            let pe = Input::from_f32(dtype, &pe_values);
            // every special is exact in each input type (fp16: 1000, 480 and the 2^-10 family too)
            for (i, &x) in kv_values.iter().enumerate() {
                assert!(kv.get(i) == x || (x.is_nan() && kv.get(i).is_nan()));
                assert_eq!(
                    kv.get(i).is_sign_negative(),
                    x.is_sign_negative() && !x.is_nan()
                );
            }

            let mut k_out = vec![POISON; s * h * (dn + dr)];
            let mut v_out = vec![POISON; s * h * dv];
            let mut args = PackArgs::builder()
                .k_nope(kv.view(0, &[s, h, dn], &[h * 32, 32, 1]))
                .v(kv.view(dn, &[s, h, dv], &[h * 32, 32, 1]))
                .k_pe(pe.view(0, &[s, dr], &[dr, 1]))
                .k_out(TensorMut::contiguous(&mut k_out, format, &[s, h, dn + dr]).unwrap())
                .v_out(TensorMut::contiguous(&mut v_out, format, &[s, h, dv]).unwrap())
                .build()
                .unwrap();
            args.run().unwrap();

            let mut want_k = Vec::new();
            let mut want_v = Vec::new();
            for _ in 0..h {
                want_k.extend_from_slice(&want);
                want_k.extend(want[..dr].iter().rev());
                want_v.extend(want.iter().rev());
            }
            assert_bytes(&format!("k_out {:?}->{:?}", dtype, format), &k_out, &want_k);
            assert_bytes(&format!("v_out {:?}->{:?}", dtype, format), &v_out, &want_v);
        }
    }
}

/// A 1-token, 1-head call with k_nope = [x; 8], k_pe = [x; 8], v = [x; 8] into `format`, the
/// builder passed through `|b| setup`; evaluates to (k_out, v_out).
macro_rules! single {
    ($x:expr, $format:expr, |$b:ident| $setup:expr) => {{
        let inputs = vec![Bf16::from_f32($x); 8];
        let mut k_out = vec![POISON; 16];
        let mut v_out = vec![POISON; 8];
        {
            let $b = PackArgs::builder()
                .k_nope(Tensor::contiguous(&inputs, &[1, 1, 8]).unwrap())
                .k_pe(Tensor::contiguous(&inputs, &[1, 8]).unwrap())
                .v(Tensor::contiguous(&inputs, &[1, 1, 8]).unwrap())
                .k_out(TensorMut::contiguous(&mut k_out, $format, &[1, 1, 16]).unwrap())
                .v_out(TensorMut::contiguous(&mut v_out, $format, &[1, 1, 8]).unwrap());
            $setup.build().unwrap().run().unwrap();
        }
        (k_out, v_out)
    }};
}

#[test]
fn scale_multipliers_value_and_host_pointer() {
    // m = 2: 1.0 -> 2.0 = 0x40 (e4m3fn); v with m = 0.5: 1.0 -> 0.5 = 0x30
    let (k, v) = single!(1.0, Fp8Format::E4m3fn, |b| b
        .k_scale_inv(2.0)
        .v_scale_inv(0.5));
    assert_eq!(k, vec![0x40; 16]);
    assert_eq!(v, vec![0x30; 8]);
    // m = 1/0.0375 turns 1.0 into 26.666668 -> 26 (0x5D) in e4m3fn
    let (k, _) = single!(1.0, Fp8Format::E4m3fn, |b| b.k_scale_inv(1.0 / 0.0375));
    assert_eq!(k, vec![0x5D; 16]);
    // a multiplier that saturates: 300 * 2 = 600 -> 448
    let (k, v) = single!(300.0, Fp8Format::E4m3fn, |b| b.k_scale_inv(2.0));
    assert_eq!(
        (k[0], v[0]),
        (0x7E, common::to_fp8(300.0, Fp8Format::E4m3fn))
    );

    // the same multipliers read from host memory when the call runs
    let (ks, vs) = (2.0f32, 0.5f32);
    let (k, v) = single!(1.0, Fp8Format::E4m3fn, |b| {
        b.k_scale_inv_host(&ks).v_scale_inv_host(&vs)
    });
    assert_eq!(k, vec![0x40; 16]);
    assert_eq!(v, vec![0x30; 8]);
    // the pointer wins over a value set before it
    let (k, _) = single!(1.0, Fp8Format::E4m3fn, |b| b
        .k_scale_inv(8.0)
        .k_scale_inv_host(&ks));
    assert_eq!(k, vec![0x40; 16]);
    // and a value set after the pointer replaces it
    let (k, _) = single!(1.0, Fp8Format::E4m3fn, |b| b
        .k_scale_inv_host(&ks)
        .k_scale_inv(4.0));
    assert_eq!(k, vec![0x48; 16]); // 4.0
}

#[test]
fn u16_bits_views_equal_typed_views() {
    let bits: Vec<u16> = vec![
        0x3F80, 0xBF80, 0x447A, 0x7FC0, 0x8000, 0x3A80, 0x3F88, 0x3F98,
    ];
    let mut from_bits = vec![POISON; 16];
    let mut from_typed = vec![POISON; 16];
    for (out, typed) in [(&mut from_bits, false), (&mut from_typed, true)] {
        let (k_out, v_out) = out.split_at_mut(8 + 4);
        let view = |shape: &[usize], strides: &[usize]| {
            if typed {
                Tensor::new(Bf16::from_bits_slice(&bits), shape, strides).unwrap()
            } else {
                Tensor::from_bits(&bits, Dtype::Bf16, shape, strides).unwrap()
            }
        };
        PackArgs::builder()
            .k_nope(view(&[1, 1, 8], &[8, 8, 1]))
            .k_pe(view(&[1, 1, 4], &[8, 4, 1])) // 3-D k_pe [s, 1, D_rope]
            .v(view(&[1, 1, 4], &[8, 8, 1]))
            .k_out(TensorMut::contiguous(k_out, Fp8Format::E4m3fn, &[1, 1, 12]).unwrap())
            .v_out(TensorMut::contiguous(v_out, Fp8Format::E4m3fn, &[1, 1, 4]).unwrap())
            .build()
            .unwrap()
            .run()
            .unwrap();
    }
    assert_eq!(from_bits, from_typed);
    // 1, -1, 1000, NaN, -0, 2^-10, 1.0625, 1.1875 | k_pe: first 4 | v: first 4
    let want = [
        0x38, 0xB8, 0x7E, 0x7F, 0x80, 0x00, 0x38, 0x3A, 0x38, 0xB8, 0x7E, 0x7F, 0x38, 0xB8, 0x7E,
        0x7F,
    ];
    assert_eq!(from_bits, want);
    // F16 bits work the same way
    let h: Vec<F16> = [1.0f32, -2.0, 0.5, 65504.0]
        .iter()
        .map(|&x| F16::from_f32(x))
        .collect();
    let mut k_out = vec![POISON; 8];
    let mut v_out = vec![POISON; 4];
    PackArgs::builder()
        .k_nope(Tensor::contiguous(&h, &[1, 1, 4]).unwrap())
        .k_pe(Tensor::contiguous(&h, &[1, 4]).unwrap())
        .v(Tensor::contiguous(&h, &[1, 1, 4]).unwrap())
        .k_out(TensorMut::contiguous(&mut k_out, Fp8Format::E5m2, &[1, 1, 8]).unwrap())
        .v_out(TensorMut::contiguous(&mut v_out, Fp8Format::E5m2, &[1, 1, 4]).unwrap())
        .build()
        .unwrap()
        .run()
        .unwrap();
    // e5m2: 1 = 0x3C, -2 = 0xC0, 0.5 = 0x38, 65504 -> 57344 = 0x7B
    assert_eq!(k_out, [0x3C, 0xC0, 0x38, 0x7B, 0x3C, 0xC0, 0x38, 0x7B]);
    assert_eq!(v_out, [0x3C, 0xC0, 0x38, 0x7B]);
}

// ---- random inputs ------------------------------------------------------------------------

#[test]
fn random_inputs_every_dtype_and_format_match_oracle_and_raw_api() {
    let mut seed = 1;
    for &dtype in [Dtype::Bf16, Dtype::Fp16, Dtype::Fp32].iter() {
        for &format in Fp8Format::ALL.iter() {
            for &(k_pe_3d, pads) in
                [(false, (0, 0, 0)), (true, (8, 3, 5)), (false, (1, 64, 2))].iter()
            {
                let mut rng = Rng::new(seed * 7919);
                let g = Geometry {
                    s: rng.range(1, 9),
                    h: rng.range(1, 5),
                    dn: rng.range(1, 40),
                    dr: rng.range(1, 24),
                    dv: rng.range(1, 40),
                    pad_kv: pads.0,
                    pad_pe: pads.1,
                    pad_out: pads.2,
                    k_pe_3d,
                };
                let (ks, vs) = if seed % 3 == 0 {
                    (1.0, 1.0)
                } else {
                    (rng.multiplier(), rng.multiplier())
                };
                check_case(g, dtype, format, ks, vs, seed);
                seed += 1;
            }
        }
    }
}

#[test]
fn deepseek_shape_bf16_halves_of_one_buffer() {
    // DeepSeek V3: D_nope 128, D_rope 64, D_v 128; k_nope and v the halves of [s, h, 256]
    let g = Geometry::dense(33, 16, 128, 64, 128);
    check_case(
        g,
        Dtype::Bf16,
        Fp8Format::E4m3fn,
        1.0 / 0.0375,
        1.0 / 0.021,
        42,
    );
    let g = Geometry {
        k_pe_3d: true,
        pad_out: 16,
        ..Geometry::dense(7, 12, 128, 64, 128)
    };
    check_case(g, Dtype::Bf16, Fp8Format::E4m3fnuz, 3.0, 0.25, 43);
}

#[test]
fn runs_concurrently_from_several_threads() {
    let handles: Vec<_> = (0..4u64)
        .map(|i| {
            std::thread::spawn(move || {
                for j in 0..5u64 {
                    let g = Geometry {
                        pad_out: (i + j) as usize % 3,
                        k_pe_3d: j % 2 == 0,
                        ..Geometry::dense(3 + i as usize, 4, 32, 16, 24)
                    };
                    let format = Fp8Format::ALL[(i + j) as usize % 4];
                    check_case(g, Dtype::Bf16, format, 1.5, 0.75, 1000 + 10 * i + j);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread panicked");
    }

    // PackArgs is Send: build on this thread, run on another.
    let kv = vec![Bf16::from_f32(1.0); 2 * 2 * 16];
    let mut k_out = vec![POISON; 2 * 2 * 12];
    let mut v_out = vec![POISON; 2 * 2 * 8];
    let mut args = PackArgs::builder()
        .k_nope(Tensor::new(&kv, &[2, 2, 8], &[32, 16, 1]).unwrap())
        .v(Tensor::new(&kv[8..], &[2, 2, 8], &[32, 16, 1]).unwrap())
        .k_pe(Tensor::new(&kv, &[2, 4], &[4, 1]).unwrap())
        .k_out(TensorMut::contiguous(&mut k_out, Fp8Format::E4m3fn, &[2, 2, 12]).unwrap())
        .v_out(TensorMut::contiguous(&mut v_out, Fp8Format::E4m3fn, &[2, 2, 8]).unwrap())
        .build()
        .unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| args.run().unwrap());
    });
    assert!(k_out.iter().chain(&v_out).all(|&b| b == 0x38));
}
