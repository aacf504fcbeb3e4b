//! Per-head scales and amax outputs (mlakv 0.2), reference backend, host memory.
//!
//! The contract (mlakv.h, above `mlakv_pack_args`): with `MLAKV_SCALE_PER_HEAD`, head `j` of
//! `k_out` (its k_nope part and its copy of k_pe) uses `k_scale_inv_ptr[j]` and head `j` of
//! `v_out` `v_scale_inv_ptr[j]`; `k_amax` / `v_amax` accumulate `max(old, max |x|)` over the
//! inputs before scaling (per tensor: one float over k_nope and k_pe / over v; per head:
//! `k_amax[j]` over head `j` of k_nope and all of k_pe, `v_amax[j]` over head `j` of v), NaN
//! ignored, inf counted, +0 when every element is NaN, the maximum taken on i32 bit patterns.

mod common;

use common::{quantize, Input, Rng, POISON};
use mlakv::{
    Backend, Dtype, Error, Fp8Format, PackArgs, ScaleGranularity, Status, Tensor, TensorMut,
};

const DTYPES: [Dtype; 3] = [Dtype::Bf16, Dtype::Fp16, Dtype::Fp32];

/// `k_nope` and `v`: the two halves of each row of one `[s, h, dn + dv]` buffer; `k_pe [s, dr]`.
#[derive(Clone, Copy)]
struct Dims {
    s: usize,
    h: usize,
    dn: usize,
    dr: usize,
    dv: usize,
}

impl Dims {
    fn row(&self) -> usize {
        self.dn + self.dv
    }
    fn k_nope<'a>(&self, kv: &'a Input) -> Tensor<'a> {
        kv.view(
            0,
            &[self.s, self.h, self.dn],
            &[self.h * self.row(), self.row(), 1],
        )
    }
    fn v<'a>(&self, kv: &'a Input) -> Tensor<'a> {
        kv.view(
            self.dn,
            &[self.s, self.h, self.dv],
            &[self.h * self.row(), self.row(), 1],
        )
    }
    /// Head j alone: [s, 1, d] views.
    fn k_nope_head<'a>(&self, kv: &'a Input, j: usize) -> Tensor<'a> {
        kv.view(
            j * self.row(),
            &[self.s, 1, self.dn],
            &[self.h * self.row(), self.row(), 1],
        )
    }
    fn v_head<'a>(&self, kv: &'a Input, j: usize) -> Tensor<'a> {
        kv.view(
            j * self.row() + self.dn,
            &[self.s, 1, self.dv],
            &[self.h * self.row(), self.row(), 1],
        )
    }
    fn k_pe<'a>(&self, pe: &'a Input) -> Tensor<'a> {
        pe.view(0, &[self.s, self.dr], &[self.dr, 1])
    }
    fn k_out_len(&self, h: usize) -> usize {
        self.s * h * (self.dn + self.dr)
    }
    fn v_out_len(&self, h: usize) -> usize {
        self.s * h * self.dv
    }
    /// Element indices (into kv) of head j of k_nope / v.
    fn nope_elems(&self, j: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for t in 0..self.s {
            for d in 0..self.dn {
                out.push(t * self.h * self.row() + j * self.row() + d);
            }
        }
        out
    }
    fn v_elems(&self, j: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for t in 0..self.s {
            for d in 0..self.dv {
                out.push(t * self.h * self.row() + j * self.row() + self.dn + d);
            }
        }
        out
    }
}

/// Distinct powers of two per head: K rising, V falling.
fn pow2_scales(h: usize) -> (Vec<f32>, Vec<f32>) {
    (
        (0..h).map(|j| 2f32.powi(j as i32 - 3)).collect(),
        (0..h).map(|j| 2f32.powi(2 - j as i32)).collect(),
    )
}

/// Subnormals of the input type (as f32 values that convert exactly).
fn subnormals(dtype: Dtype) -> [f32; 3] {
    match dtype {
        Dtype::Fp16 => [2f32.powi(-20), -(2f32.powi(-17)), 2f32.powi(-24)],
        Dtype::Bf16 => [2f32.powi(-130), -3.0 * 2f32.powi(-133), 2f32.powi(-133)],
        _ => [2f32.powi(-130), -3.0 * 2f32.powi(-133), f32::from_bits(1)],
    }
}

/// Normal values scaled by a per-head factor (`factor(head)`), with NaN (both signs), -0, +0 and
/// subnormals sprinkled over every head; no infinities (tests place those).
fn head_values(
    rng: &mut Rng,
    dims: Dims,
    dtype: Dtype,
    k_factor: &[f32],
    v_factor: &[f32],
) -> (Input, Input) {
    let specials = {
        let sub = subnormals(dtype);
        [
            f32::NAN,
            f32::from_bits(0xFFC0_0001),
            -0.0,
            0.0,
            sub[0],
            sub[1],
            sub[2],
        ]
    };
    let normal = |rng: &mut Rng, f: f32| {
        let mantissa = 1.0 + (rng.below(1 << 10) as f32) / 1024.0;
        let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
        let x = sign * mantissa * 2f32.powi(rng.below(6) as i32 - 3) * f;
        if rng.below(10) == 0 {
            specials[rng.below(specials.len() as u64) as usize]
        } else {
            x
        }
    };
    let mut kv = vec![0f32; dims.s * dims.h * dims.row()];
    for t in 0..dims.s {
        for j in 0..dims.h {
            for d in 0..dims.row() {
                let f = if d < dims.dn {
                    k_factor[j]
                } else {
                    v_factor[j]
                };
                kv[t * dims.h * dims.row() + j * dims.row() + d] = normal(rng, f);
            }
        }
    }
    let pe: Vec<f32> = (0..dims.s * dims.dr).map(|_| normal(rng, 0.5)).collect();
    (Input::from_f32(dtype, &kv), Input::from_f32(dtype, &pe))
}

/// max |x| over the elements, NaN skipped, inf counted, +0 when none: a plain loop.
fn amax_loop(values: impl Iterator<Item = f32>) -> f32 {
    let mut m = 0f32;
    for x in values {
        if x.is_nan() {
            continue;
        }
        if x.abs() > m {
            m = x.abs();
        }
    }
    m
}

/// The stored value after a call: max(old, m) compared as i32 bit patterns.
fn accumulate(old: f32, m: f32) -> f32 {
    f32::from_bits((old.to_bits() as i32).max(m.to_bits() as i32) as u32)
}

fn assert_bits(got: &[f32], want: &[f32], what: &str) {
    let g: Vec<u32> = got.iter().map(|x| x.to_bits()).collect();
    let w: Vec<u32> = want.iter().map(|x| x.to_bits()).collect();
    assert_eq!(g, w, "{}: got {:?}, want {:?}", what, got, want);
}

fn assert_poison(what: &str, bytes: &[u8]) {
    if let Some(i) = bytes.iter().position(|&b| b != POISON) {
        panic!("{}: byte {} was written ({:#04x})", what, i, bytes[i]);
    }
}

// ---- per-head scales ----------------------------------------------------------------------------

#[test]
fn per_head_scales_equal_packing_each_head_separately() {
    let dims = Dims {
        s: 7,
        h: 6,
        dn: 32,
        dr: 16,
        dv: 24,
    };
    let mut rng = Rng::new(7);
    let (ks, vs) = pow2_scales(dims.h);
    for &dtype in DTYPES.iter() {
        for &format in Fp8Format::ALL.iter() {
            let kv = Input::random(dtype, dims.s * dims.h * dims.row(), &mut rng);
            let pe = Input::random(dtype, dims.s * dims.dr, &mut rng);
            let kd = dims.dn + dims.dr;
            let mut k_out = vec![POISON; dims.k_out_len(dims.h)];
            let mut v_out = vec![POISON; dims.v_out_len(dims.h)];
            let mut args = PackArgs::builder()
                .k_nope(dims.k_nope(&kv))
                .k_pe(dims.k_pe(&pe))
                .v(dims.v(&kv))
                .k_out(TensorMut::contiguous(&mut k_out, format, &[dims.s, dims.h, kd]).unwrap())
                .v_out(
                    TensorMut::contiguous(&mut v_out, format, &[dims.s, dims.h, dims.dv]).unwrap(),
                )
                .k_scale_inv_per_head(&ks)
                .v_scale_inv_per_head(&vs)
                .build()
                .unwrap();
            assert_eq!(args.scale_granularity(), ScaleGranularity::PerHead);
            assert_eq!(args.backend(), Backend::Reference);
            assert!(args.plan().unwrap().contains("scales=per-head"));
            args.run().unwrap();
            drop(args);
            for j in 0..dims.h {
                let mut kj = vec![POISON; dims.k_out_len(1)];
                let mut vj = vec![POISON; dims.v_out_len(1)];
                PackArgs::builder()
                    .k_nope(dims.k_nope_head(&kv, j))
                    .k_pe(dims.k_pe(&pe))
                    .v(dims.v_head(&kv, j))
                    .k_out(TensorMut::contiguous(&mut kj, format, &[dims.s, 1, kd]).unwrap())
                    .v_out(TensorMut::contiguous(&mut vj, format, &[dims.s, 1, dims.dv]).unwrap())
                    .k_scale_inv(ks[j])
                    .v_scale_inv(vs[j])
                    .build()
                    .unwrap()
                    .run()
                    .unwrap();
                for t in 0..dims.s {
                    let full_k = &k_out[(t * dims.h + j) * kd..(t * dims.h + j + 1) * kd];
                    let full_v = &v_out[(t * dims.h + j) * dims.dv..(t * dims.h + j + 1) * dims.dv];
                    assert_eq!(
                        full_k,
                        &kj[t * kd..(t + 1) * kd],
                        "{:?} {:?} k head {} t {}",
                        dtype,
                        format,
                        j,
                        t
                    );
                    assert_eq!(
                        full_v,
                        &vj[t * dims.dv..(t + 1) * dims.dv],
                        "{:?} {:?} v head {} t {}",
                        dtype,
                        format,
                        j,
                        t
                    );
                    // the independent oracle
                    for d in 0..dims.dn {
                        let x = kv.get(t * dims.h * dims.row() + j * dims.row() + d);
                        assert_eq!(full_k[d], quantize(x, ks[j], format));
                    }
                    for d in 0..dims.dr {
                        assert_eq!(
                            full_k[dims.dn + d],
                            quantize(pe.get(t * dims.dr + d), ks[j], format)
                        );
                    }
                    for d in 0..dims.dv {
                        let x = kv.get(t * dims.h * dims.row() + j * dims.row() + dims.dn + d);
                        assert_eq!(full_v[d], quantize(x, vs[j], format));
                    }
                }
            }
        }
    }
}

#[test]
fn per_head_scales_from_raw_pointers_equal_slices() {
    let dims = Dims {
        s: 5,
        h: 4,
        dn: 16,
        dr: 8,
        dv: 16,
    };
    let mut rng = Rng::new(11);
    let kv = Input::random(Dtype::Bf16, dims.s * dims.h * dims.row(), &mut rng);
    let pe = Input::random(Dtype::Bf16, dims.s * dims.dr, &mut rng);
    let (ks, vs) = pow2_scales(dims.h);
    let kd = dims.dn + dims.dr;
    let run = |raw: bool| {
        let mut k_out = vec![POISON; dims.k_out_len(dims.h)];
        let mut v_out = vec![POISON; dims.v_out_len(dims.h)];
        let mut amax = [0f32; 8];
        {
            let (ka, va) = amax.split_at_mut(4);
            let b = PackArgs::builder()
                .k_nope(dims.k_nope(&kv))
                .k_pe(dims.k_pe(&pe))
                .v(dims.v(&kv))
                .k_out(
                    TensorMut::contiguous(&mut k_out, Fp8Format::E5m2, &[dims.s, dims.h, kd])
                        .unwrap(),
                )
                .v_out(
                    TensorMut::contiguous(&mut v_out, Fp8Format::E5m2, &[dims.s, dims.h, dims.dv])
                        .unwrap(),
                );
            let b = if raw {
                // SAFETY: ks, vs, ka, va are host memory of h floats each, alive and not used
                // otherwise during the synchronous call on the reference backend.
                unsafe {
                    b.k_scale_inv_per_head_ptr(ks.as_ptr())
                        .v_scale_inv_per_head_ptr(vs.as_ptr())
                        .k_amax_ptr(ka.as_mut_ptr())
                        .v_amax_ptr(va.as_mut_ptr())
                        .backend(Backend::Reference)
                }
            } else {
                b.k_scale_inv_per_head(&ks)
                    .v_scale_inv_per_head(&vs)
                    .k_amax(ka)
                    .v_amax(va)
            };
            b.build().unwrap().run().unwrap();
        }
        (k_out, v_out, amax)
    };
    let (a, b) = (run(false), run(true));
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    assert_bits(&a.2, &b.2, "amax");
    assert!(a.2.iter().all(|&x| x > 0.0));
}

// ---- amax -----------------------------------------------------------------------------------------

#[test]
fn amax_per_tensor_accumulates_over_two_calls() {
    let dims = Dims {
        s: 6,
        h: 4,
        dn: 16,
        dr: 8,
        dv: 16,
    };
    let mut rng = Rng::new(21);
    for &dtype in DTYPES.iter() {
        let (mut k_amax, mut v_amax) = ([0f32], [0f32]);
        let (mut want_k, mut want_v) = (0f32, 0f32);
        for call in 0..2 {
            // call 0: K larger; call 1: V larger with an infinity, K with the maximum in k_pe
            let (kf, vf) = if call == 0 { (4.0, 1.0) } else { (1.0, 2.0) };
            let (mut kv, mut pe) = head_values(&mut rng, dims, dtype, &[kf; 4], &[vf; 4]);
            if call == 1 {
                let mut v32: Vec<f32> = (0..kv.len()).map(|i| kv.get(i)).collect();
                v32[2 * dims.h * dims.row() + dims.row() + dims.dn + 3] = f32::NEG_INFINITY;
                kv = Input::from_f32(dtype, &v32);
                let mut p32: Vec<f32> = (0..pe.len()).map(|i| pe.get(i)).collect();
                p32[5] = -1000.0;
                pe = Input::from_f32(dtype, &p32);
            }
            let mut k_out = vec![POISON; dims.k_out_len(dims.h)];
            let mut v_out = vec![POISON; dims.v_out_len(dims.h)];
            let mut args = PackArgs::builder()
                .k_nope(dims.k_nope(&kv))
                .k_pe(dims.k_pe(&pe))
                .v(dims.v(&kv))
                .k_out(
                    TensorMut::contiguous(&mut k_out, Fp8Format::E4m3fn, &[dims.s, dims.h, 24])
                        .unwrap(),
                )
                .v_out(
                    TensorMut::contiguous(&mut v_out, Fp8Format::E4m3fn, &[dims.s, dims.h, 16])
                        .unwrap(),
                )
                .k_scale_inv(2.0)
                .v_scale_inv(0.5)
                .k_amax(&mut k_amax)
                .v_amax(&mut v_amax)
                .build()
                .unwrap();
            assert!(args.plan().unwrap().contains("scales=per-tensor amax=k,v"));
            args.run().unwrap();
            drop(args);
            let nope: Vec<usize> = (0..dims.h).flat_map(|j| dims.nope_elems(j)).collect();
            let v_el: Vec<usize> = (0..dims.h).flat_map(|j| dims.v_elems(j)).collect();
            let mk = amax_loop(
                nope.iter()
                    .map(|&i| kv.get(i))
                    .chain((0..pe.len()).map(|i| pe.get(i))),
            );
            let mv = amax_loop(v_el.iter().map(|&i| kv.get(i)));
            want_k = accumulate(want_k, mk);
            want_v = accumulate(want_v, mv);
            assert_bits(
                &k_amax,
                &[want_k],
                &format!("{:?} k_amax after call {}", dtype, call),
            );
            assert_bits(
                &v_amax,
                &[want_v],
                &format!("{:?} v_amax after call {}", dtype, call),
            );
            // amax changes nothing in the outputs
            for (n, &i) in nope.iter().enumerate().take(dims.dn) {
                assert_eq!(k_out[n], quantize(kv.get(i), 2.0, Fp8Format::E4m3fn));
            }
        }
        assert_eq!(k_amax[0], 1000.0, "{:?}", dtype);
        assert_eq!(v_amax[0], f32::INFINITY, "{:?}", dtype);
    }
}

#[test]
fn amax_per_head_accumulates_over_two_calls() {
    let dims = Dims {
        s: 5,
        h: 5,
        dn: 16,
        dr: 8,
        dv: 24,
    };
    let mut rng = Rng::new(33);
    let (ks, vs) = pow2_scales(dims.h);
    let f1 = [8.0, 1.0, 1.0, 8.0, 1.0];
    let f2 = [1.0, 8.0, 8.0, 1.0, 1.0];
    for &dtype in DTYPES.iter() {
        let mut k_amax = [0f32; 5];
        let mut v_amax = [0f32; 5];
        let mut want_k = [0f32; 5];
        let mut want_v = [0f32; 5];
        for call in 0..2 {
            let (kf, vf) = if call == 0 { (&f1, &f2) } else { (&f2, &f1) };
            let (mut kv, pe) = head_values(&mut rng, dims, dtype, kf, vf);
            if call == 1 {
                // +inf in head 2 of k_nope, -inf in head 0 of v
                let mut x: Vec<f32> = (0..kv.len()).map(|i| kv.get(i)).collect();
                x[3 * dims.h * dims.row() + 2 * dims.row() + 5] = f32::INFINITY;
                x[dims.dn] = f32::NEG_INFINITY;
                kv = Input::from_f32(dtype, &x);
            }
            let mut k_out = vec![POISON; dims.k_out_len(dims.h)];
            let mut v_out = vec![POISON; dims.v_out_len(dims.h)];
            PackArgs::builder()
                .k_nope(dims.k_nope(&kv))
                .k_pe(dims.k_pe(&pe))
                .v(dims.v(&kv))
                .k_out(
                    TensorMut::contiguous(&mut k_out, Fp8Format::E4m3fn, &[dims.s, dims.h, 24])
                        .unwrap(),
                )
                .v_out(
                    TensorMut::contiguous(&mut v_out, Fp8Format::E4m3fn, &[dims.s, dims.h, 24])
                        .unwrap(),
                )
                .k_scale_inv_per_head(&ks)
                .v_scale_inv_per_head(&vs)
                .k_amax(&mut k_amax)
                .v_amax(&mut v_amax)
                .build()
                .unwrap()
                .run()
                .unwrap();
            let pe_max = amax_loop((0..pe.len()).map(|i| pe.get(i)));
            for j in 0..dims.h {
                let mk = amax_loop(dims.nope_elems(j).iter().map(|&i| kv.get(i)));
                want_k[j] = accumulate(want_k[j], accumulate(mk, pe_max));
                want_v[j] = accumulate(
                    want_v[j],
                    amax_loop(dims.v_elems(j).iter().map(|&i| kv.get(i))),
                );
            }
            assert_bits(
                &k_amax,
                &want_k,
                &format!("{:?} k_amax after call {}", dtype, call),
            );
            assert_bits(
                &v_amax,
                &want_v,
                &format!("{:?} v_amax after call {}", dtype, call),
            );
        }
        assert_eq!(k_amax[2], f32::INFINITY);
        assert_eq!(v_amax[0], f32::INFINITY);
        // heads 0 and 3 of K kept call 0's maximum, heads 1 and 2 took call 1's
        assert!(
            k_amax[0] > 4.0 * k_amax[4] && k_amax[3] > 4.0 * k_amax[4],
            "{:?}",
            k_amax
        );
        assert!(k_amax[1] > 4.0 * k_amax[4], "{:?}", k_amax);
    }
}

#[test]
fn amax_bit_pattern_rule_all_nan_and_empty_calls() {
    let (s, h) = (3, 2);
    let nan_k = vec![f32::NAN; s * h * 16];
    let nan_pe = vec![f32::NAN; s * 8];
    let mut v = vec![-2.5f32; s * h * 16];
    v[0] = f32::NAN;
    let run = |s: usize, k_amax: &mut [f32], v_amax: Option<&mut [f32]>| -> Result<(), Error> {
        let mut k_out = vec![POISON; s * h * 24];
        let mut v_out = vec![POISON; s * h * 16];
        let b = PackArgs::builder()
            .k_nope(Tensor::contiguous(&nan_k[..s * h * 16], &[s, h, 16]).unwrap())
            .k_pe(Tensor::contiguous(&nan_pe[..s * 8], &[s, 8]).unwrap())
            .v(Tensor::contiguous(&v[..s * h * 16], &[s, h, 16]).unwrap())
            .k_out(TensorMut::contiguous(&mut k_out, Fp8Format::E4m3fn, &[s, h, 24]).unwrap())
            .v_out(TensorMut::contiguous(&mut v_out, Fp8Format::E4m3fn, &[s, h, 16]).unwrap())
            .k_amax(k_amax);
        let b = match v_amax {
            Some(a) => b.v_amax(a),
            None => b,
        };
        b.build()?.run()
    };
    let mut ka = [-1.0f32]; // negative: any m >= +0 replaces it
    let mut va = [f32::NAN]; // 0x7FC00000 is above every |x| pattern: it stays
    run(s, &mut ka, Some(&mut va)).unwrap();
    assert_eq!(ka[0].to_bits(), 0, "all NaN: +0 (not -0), got {:?}", ka);
    assert!(va[0].is_nan());
    va[0] = 3.0;
    run(s, &mut ka, Some(&mut va)).unwrap();
    assert_bits(&va, &[3.0], "old value larger");
    va[0] = 1.0;
    run(s, &mut ka, Some(&mut va)).unwrap();
    assert_bits(&va, &[2.5], "|-2.5|");
    // s = 0: nothing read, nothing written
    let mut ka = [-7.0f32];
    run(0, &mut ka, None).unwrap();
    assert_bits(&ka, &[-7.0], "k_amax after an empty call");
}

// ---- errors ---------------------------------------------------------------------------------------

struct ErrSetup {
    kv: Vec<f32>,
    pe: Vec<f32>,
    k_out: Vec<u8>,
    v_out: Vec<u8>,
}

const S: usize = 4;
const H: usize = 3;

fn err_setup() -> ErrSetup {
    ErrSetup {
        kv: (0..S * H * 32).map(|i| i as f32 * 0.5 - 7.0).collect(),
        pe: (0..S * 8).map(|i| i as f32).collect(),
        k_out: vec![POISON; S * H * 24],
        v_out: vec![POISON; S * H * 16],
    }
}

impl ErrSetup {
    fn builder(&mut self) -> mlakv::PackArgsBuilder<'_> {
        PackArgs::builder()
            .k_nope(Tensor::new(&self.kv, &[S, H, 16], &[H * 32, 32, 1]).unwrap())
            .v(Tensor::new(&self.kv[16..], &[S, H, 16], &[H * 32, 32, 1]).unwrap())
            .k_pe(Tensor::contiguous(&self.pe, &[S, 8]).unwrap())
            .k_out(TensorMut::contiguous(&mut self.k_out, Fp8Format::E4m3fn, &[S, H, 24]).unwrap())
            .v_out(TensorMut::contiguous(&mut self.v_out, Fp8Format::E4m3fn, &[S, H, 16]).unwrap())
    }
    fn untouched(&self) {
        assert_poison("k_out", &self.k_out);
        assert_poison("v_out", &self.v_out);
    }
}

fn assert_status(r: Result<(), Error>, status: Status, needle: &str) {
    let e = r.unwrap_err();
    assert_eq!(e.status(), status, "{}", e);
    assert!(
        e.message().contains(needle),
        "{:?} lacks {:?}",
        e.message(),
        needle
    );
}

#[test]
fn per_head_without_scale_pointers_is_null_pointer() {
    let (ks, _) = pow2_scales(H);
    let mut amax = [-5.0f32; H];
    let mut e = err_setup();
    // granularity per head, both multipliers by value: the library sees two NULL pointers
    let r = e
        .builder()
        .scale_granularity(ScaleGranularity::PerHead)
        .k_amax(&mut amax)
        .build()
        .and_then(|mut a| a.run());
    assert_status(r, Status::NullPointer, "per-head");
    e.untouched();
    // only K per head
    let r = e
        .builder()
        .k_scale_inv_per_head(&ks)
        .v_scale_inv(2.0)
        .build()
        .and_then(|mut a| a.run());
    assert_status(r, Status::NullPointer, "v_scale_inv");
    e.untouched();
    assert!(amax.iter().all(|&x| x == -5.0));
}

#[test]
fn wrong_granularity_is_invalid_argument() {
    let (ks, vs) = pow2_scales(H);
    for &code in [2, -1, 7, i32::MAX].iter() {
        let mut e = err_setup();
        let r = e
            .builder()
            .k_scale_inv_per_head(&ks)
            .v_scale_inv_per_head(&vs)
            .scale_granularity(ScaleGranularity::Other(code))
            .build()
            .and_then(|mut a| a.run());
        assert_status(r, Status::InvalidArgument, "scale_granularity");
        e.untouched();
        assert_eq!(
            ScaleGranularity::from_code(code),
            ScaleGranularity::Other(code)
        );
    }
    assert_eq!(ScaleGranularity::from_code(1), ScaleGranularity::PerHead);
    assert_eq!(ScaleGranularity::PerTensor.code(), 0);
}

#[test]
fn amax_overlapping_an_input_or_output_is_overlap() {
    let mut e = err_setup();
    let before = e.kv.clone();
    let inside_k = e.kv[40..].as_ptr() as *mut f32; // an element of k_nope
    let inside_v = e.kv[16..].as_ptr() as *mut f32; // the first element of v
    let inside_pe = e.pe[3..].as_ptr() as *mut f32;
    for (k, p) in [(true, inside_k), (false, inside_v), (true, inside_pe)] {
        // SAFETY: the pointers lie in live host memory; the library refuses the call before it
        // writes anything (checked below), so the shared borrows are never written through.
        let r = unsafe {
            let b = e.builder();
            let b = if k { b.k_amax_ptr(p) } else { b.v_amax_ptr(p) };
            b.build().and_then(|mut a| a.run())
        };
        assert_status(r, Status::Overlap, "amax overlaps");
        e.untouched();
    }
    assert_eq!(e.kv, before);
    // the two amax arrays on one float, and an amax array on a per-head scale array
    let (ks, vs) = pow2_scales(H);
    let mut one = [0f32; 1];
    let p = one.as_mut_ptr();
    // SAFETY: as above.
    let r = unsafe {
        e.builder()
            .k_amax_ptr(p)
            .v_amax_ptr(p)
            .build()
            .and_then(|mut a| a.run())
    };
    assert_status(r, Status::Overlap, "overlaps");
    // SAFETY: as above.
    let r = unsafe {
        e.builder()
            .k_scale_inv_per_head(&ks)
            .v_scale_inv_per_head(&vs)
            .v_amax_ptr(ks.as_ptr() as *mut f32)
            .build()
            .and_then(|mut a| a.run())
    };
    assert_status(r, Status::Overlap, "overlaps");
    e.untouched();
    assert_eq!(one[0], 0.0);
}

#[test]
fn slices_of_the_wrong_length_are_refused_in_rust() {
    let (ks, vs) = pow2_scales(H + 1);
    let mut e = err_setup();
    // per-head multipliers: h = 3 floats, not 4
    let r = e
        .builder()
        .k_scale_inv_per_head(&ks)
        .v_scale_inv_per_head(&vs[..H])
        .build()
        .map(|_| ());
    assert_status(r, Status::Shape, "k_scale_inv");
    let r = e
        .builder()
        .k_scale_inv_per_head(&ks[..H])
        .v_scale_inv_per_head(&vs[..2])
        .build()
        .map(|_| ());
    assert_status(r, Status::Shape, "v_scale_inv");
    // per-head granularity with a single host float: it would be read as h floats
    let one = 2.0f32;
    let r = e
        .builder()
        .k_scale_inv_host(&one)
        .v_scale_inv_per_head(&vs[..H])
        .build()
        .map(|_| ());
    assert_status(r, Status::Shape, "k_scale_inv");
    // amax: 1 float per tensor, h per head
    let mut three = [0f32; 3];
    let r = e.builder().k_amax(&mut three).build().map(|_| ());
    assert_status(r, Status::Shape, "k_amax");
    let mut one_amax = [0f32; 1];
    let r = e
        .builder()
        .k_scale_inv_per_head(&ks[..H])
        .v_scale_inv_per_head(&vs[..H])
        .v_amax(&mut one_amax)
        .build()
        .map(|_| ());
    assert_status(r, Status::Shape, "v_amax");
    // h unknown: k_nope of rank 2
    let mut e2 = err_setup();
    let r = PackArgs::builder()
        .k_nope(Tensor::new(&e2.kv, &[S * H, 16], &[32, 1]).unwrap())
        .v(Tensor::new(&e2.kv[16..], &[S, H, 16], &[H * 32, 32, 1]).unwrap())
        .k_pe(Tensor::contiguous(&e2.pe, &[S, 8]).unwrap())
        .k_out(TensorMut::contiguous(&mut e2.k_out, Fp8Format::E4m3fn, &[S, H, 24]).unwrap())
        .v_out(TensorMut::contiguous(&mut e2.v_out, Fp8Format::E4m3fn, &[S, H, 16]).unwrap())
        .k_scale_inv_per_head(&ks[..H])
        .v_scale_inv_per_head(&vs[..H])
        .build()
        .map(|_| ());
    assert_status(r, Status::Rank, "k_nope");
    e.untouched();
    e2.untouched();
    // slices force the reference backend
    let r = e
        .builder()
        .k_scale_inv_per_head(&ks[..H])
        .v_scale_inv_per_head(&vs[..H])
        .backend(Backend::Cuda)
        .build()
        .map(|_| ());
    assert_status(r, Status::MemorySpace, "reference backend");
}
