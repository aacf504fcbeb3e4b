//! Helpers shared by the integration tests: a random generator, an independent FP8 oracle
//! written from the numerics in MISSION.md, and the poison byte.
#![allow(dead_code)]

use mlakv::{Bf16, Dtype, Fp8Format, F16};

/// Outputs are filled with this before every call; untouched bytes must still hold it.
pub const POISON: u8 = 0xAA;

/// xorshift64*: deterministic, good enough for test inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn range(&mut self, lo: usize, hi_inclusive: usize) -> usize {
        lo + self.below((hi_inclusive - lo + 1) as u64) as usize
    }
    /// A float that exercises the FP8 conversions: mostly values around the FP8 ranges
    /// (subnormals to beyond max, both signs), sometimes arbitrary bit patterns (NaN, inf,
    /// huge, tiny) and exact zeros.
    pub fn interesting_f32(&mut self) -> f32 {
        match self.below(16) {
            0 => f32::from_bits(self.next_u64() as u32),
            1 => {
                if self.below(2) == 0 {
                    0.0
                } else {
                    -0.0
                }
            }
            _ => {
                let exp = self.below(36) as i32 - 20; // 2^-20 .. 2^15
                let mantissa = 1.0 + (self.below(1 << 23) as f32) / (1u32 << 23) as f32;
                let sign = if self.below(2) == 0 { 1.0 } else { -1.0 };
                sign * mantissa * 2f32.powi(exp)
            }
        }
    }

    /// A scale multiplier: log-uniform in [2^-6, 2^6] with a random 24-bit mantissa.
    pub fn multiplier(&mut self) -> f32 {
        let mantissa = 1.0 + (self.below(1 << 23) as f32) / (1u32 << 23) as f32;
        mantissa * 2f32.powi(self.below(13) as i32 - 6)
    }
}

/// Input data in one of the three input types, with its exact f32 values.
pub enum Input {
    Bf16(Vec<Bf16>),
    F16(Vec<F16>),
    F32(Vec<f32>),
}

impl Input {
    pub fn random(dtype: Dtype, len: usize, rng: &mut Rng) -> Input {
        match dtype {
            Dtype::Bf16 => Input::Bf16(
                (0..len)
                    .map(|_| {
                        if rng.below(8) == 0 {
                            Bf16(rng.next_u64() as u16)
                        } else {
                            Bf16::from_f32(rng.interesting_f32())
                        }
                    })
                    .collect(),
            ),
            Dtype::Fp16 => Input::F16(
                (0..len)
                    .map(|_| {
                        if rng.below(8) == 0 {
                            F16(rng.next_u64() as u16)
                        } else {
                            F16::from_f32(rng.interesting_f32())
                        }
                    })
                    .collect(),
            ),
            Dtype::Fp32 => Input::F32((0..len).map(|_| rng.interesting_f32()).collect()),
            other => panic!("not an input dtype: {:?}", other),
        }
    }

    pub fn from_f32(dtype: Dtype, values: &[f32]) -> Input {
        match dtype {
            Dtype::Bf16 => Input::Bf16(values.iter().map(|&x| Bf16::from_f32(x)).collect()),
            Dtype::Fp16 => Input::F16(values.iter().map(|&x| F16::from_f32(x)).collect()),
            Dtype::Fp32 => Input::F32(values.to_vec()),
            other => panic!("not an input dtype: {:?}", other),
        }
    }

    pub fn dtype(&self) -> Dtype {
        match self {
            Input::Bf16(_) => Dtype::Bf16,
            Input::F16(_) => Dtype::Fp16,
            Input::F32(_) => Dtype::Fp32,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Input::Bf16(v) => v.len(),
            Input::F16(v) => v.len(),
            Input::F32(v) => v.len(),
        }
    }

    /// Element i widened to f32 exactly.
    pub fn get(&self, i: usize) -> f32 {
        match self {
            Input::Bf16(v) => v[i].to_f32(),
            Input::F16(v) => v[i].to_f32(),
            Input::F32(v) => v[i],
        }
    }

    /// A view of elements `offset..` with this shape and these strides.
    pub fn view(&self, offset: usize, shape: &[usize], strides: &[usize]) -> mlakv::Tensor<'_> {
        match self {
            Input::Bf16(v) => mlakv::Tensor::new(&v[offset..], shape, strides),
            Input::F16(v) => mlakv::Tensor::new(&v[offset..], shape, strides),
            Input::F32(v) => mlakv::Tensor::new(&v[offset..], shape, strides),
        }
        .expect("view")
    }

    pub fn as_ptr(&self) -> *const std::os::raw::c_void {
        match self {
            Input::Bf16(v) => v.as_ptr() as *const _,
            Input::F16(v) => v.as_ptr() as *const _,
            Input::F32(v) => v.as_ptr() as *const _,
        }
    }
}

/// (exponent bits, mantissa bits, bias, fnuz)
fn params(format: Fp8Format) -> (i32, i32, i32, bool) {
    match format {
        Fp8Format::E4m3fn => (4, 3, 7, false),
        Fp8Format::E5m2 => (5, 2, 15, false),
        Fp8Format::E4m3fnuz => (4, 3, 8, true),
        Fp8Format::E5m2fnuz => (5, 2, 16, true),
    }
}

fn floor_log2(a: f64) -> i32 {
    // a is a positive normal f64 (every non-zero f32 is one)
    ((a.to_bits() >> 52) & 0x7FF) as i32 - 1023
}

fn round_half_even(n: f64) -> f64 {
    let r = n.floor();
    let frac = n - r;
    if frac > 0.5 || (frac == 0.5 && r % 2.0 != 0.0) {
        r + 1.0
    } else {
        r
    }
}

/// The FP8 byte for the fp32 value `p`: round to nearest even with gradual underflow,
/// saturating to +-max (infinities too), NaN to the format's NaN, -0 to 0x00 for fnuz.
pub fn to_fp8(p: f32, format: Fp8Format) -> u8 {
    let (_ebits, mbits, bias, fnuz) = params(format);
    if p.is_nan() {
        return format.nan_bits();
    }
    let sign: u8 = if p.is_sign_negative() { 0x80 } else { 0 };
    let a = (p as f64).abs();
    let max = format.max() as f64;
    let emin = 1 - bias;
    let q = if a == 0.0 || a.is_infinite() {
        a
    } else {
        let quantum = 2f64.powi(floor_log2(a).max(emin) - mbits);
        round_half_even(a / quantum) * quantum // exact: a has at most 24 significant bits
    };
    let q = if q > max { max } else { q };
    if q == 0.0 {
        return if fnuz { 0 } else { sign };
    }
    let e = floor_log2(q);
    let (exp_field, mant) = if e < emin {
        (0, q / 2f64.powi(emin - mbits))
    } else {
        (
            (e + bias) as u8,
            q / 2f64.powi(e - mbits) - 2f64.powi(mbits),
        )
    };
    sign | (exp_field << mbits) | mant as u8
}

/// Q(x * m): the fp32 product (one rounding), then to FP8.
pub fn quantize(x: f32, m: f32, format: Fp8Format) -> u8 {
    to_fp8(x * m, format)
}
