//! Data types, backends, PDL modes, and the 16-bit float element types.

use std::fmt;

use mlakv_sys as sys;

/// Every data type of the C ABI (`MLAKV_DTYPE_*`): the three input types and the four FP8
/// output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// bfloat16 input ([`Bf16`]).
    Bf16,
    /// IEEE binary16 input ([`F16`]).
    Fp16,
    /// IEEE binary32 input (`f32`).
    Fp32,
    /// OCP e4m3fn output: max 448, NaN 0x7F, -0 = 0x80.
    E4m3fn,
    /// OCP e5m2 output: max 57344, NaN 0x7F, -0 = 0x80.
    E5m2,
    /// AMD gfx942 e4m3fnuz output: max 240, NaN 0x80, no negative zero.
    E4m3fnuz,
    /// AMD gfx942 e5m2fnuz output: max 57344, NaN 0x80, no negative zero.
    E5m2fnuz,
}

impl Dtype {
    /// The C code, `MLAKV_DTYPE_*`.
    pub fn code(self) -> i32 {
        match self {
            Dtype::Bf16 => sys::MLAKV_DTYPE_BF16,
            Dtype::Fp16 => sys::MLAKV_DTYPE_FP16,
            Dtype::Fp32 => sys::MLAKV_DTYPE_FP32,
            Dtype::E4m3fn => sys::MLAKV_DTYPE_E4M3FN,
            Dtype::E5m2 => sys::MLAKV_DTYPE_E5M2,
            Dtype::E4m3fnuz => sys::MLAKV_DTYPE_E4M3FNUZ,
            Dtype::E5m2fnuz => sys::MLAKV_DTYPE_E5M2FNUZ,
        }
    }

    /// The dtype of a C code, `None` for `MLAKV_DTYPE_INVALID` and unknown codes.
    pub fn from_code(code: i32) -> Option<Dtype> {
        match code {
            sys::MLAKV_DTYPE_BF16 => Some(Dtype::Bf16),
            sys::MLAKV_DTYPE_FP16 => Some(Dtype::Fp16),
            sys::MLAKV_DTYPE_FP32 => Some(Dtype::Fp32),
            sys::MLAKV_DTYPE_E4M3FN => Some(Dtype::E4m3fn),
            sys::MLAKV_DTYPE_E5M2 => Some(Dtype::E5m2),
            sys::MLAKV_DTYPE_E4M3FNUZ => Some(Dtype::E4m3fnuz),
            sys::MLAKV_DTYPE_E5M2FNUZ => Some(Dtype::E5m2fnuz),
            _ => None,
        }
    }

    /// Bytes per element: 2, 2, 4 for the inputs, 1 for the FP8 formats.
    pub fn size_in_bytes(self) -> usize {
        match self {
            Dtype::Bf16 | Dtype::Fp16 => 2,
            Dtype::Fp32 => 4,
            _ => 1,
        }
    }

    /// The FP8 format, `None` for the input types.
    pub fn fp8_format(self) -> Option<Fp8Format> {
        match self {
            Dtype::E4m3fn => Some(Fp8Format::E4m3fn),
            Dtype::E5m2 => Some(Fp8Format::E5m2),
            Dtype::E4m3fnuz => Some(Fp8Format::E4m3fnuz),
            Dtype::E5m2fnuz => Some(Fp8Format::E5m2fnuz),
            _ => None,
        }
    }

    /// The name the library prints: `"bf16"`, `"fp16"`, `"fp32"`, `"e4m3fn"`, ...
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bf16 => "bf16",
            Dtype::Fp16 => "fp16",
            Dtype::Fp32 => "fp32",
            Dtype::E4m3fn => "e4m3fn",
            Dtype::E5m2 => "e5m2",
            Dtype::E4m3fnuz => "e4m3fnuz",
            Dtype::E5m2fnuz => "e5m2fnuz",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The FP8 output formats. `k_out` and `v_out` hold one byte per element in this format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fp8Format {
    /// OCP e4m3fn (NVIDIA sm_89+, AMD gfx950/gfx12): max 448, NaN 0x7F, -0 = 0x80.
    E4m3fn,
    /// OCP e5m2: max 57344, NaN 0x7F, -0 = 0x80.
    E5m2,
    /// e4m3fnuz (AMD MI300, gfx942): max 240, NaN 0x80, -0 stored as 0x00.
    E4m3fnuz,
    /// e5m2fnuz (AMD MI300, gfx942): max 57344, NaN 0x80, -0 stored as 0x00.
    E5m2fnuz,
}

impl Fp8Format {
    /// All four formats.
    pub const ALL: [Fp8Format; 4] = [
        Fp8Format::E4m3fn,
        Fp8Format::E5m2,
        Fp8Format::E4m3fnuz,
        Fp8Format::E5m2fnuz,
    ];

    /// The [`Dtype`] of this format.
    pub fn dtype(self) -> Dtype {
        match self {
            Fp8Format::E4m3fn => Dtype::E4m3fn,
            Fp8Format::E5m2 => Dtype::E5m2,
            Fp8Format::E4m3fnuz => Dtype::E4m3fnuz,
            Fp8Format::E5m2fnuz => Dtype::E5m2fnuz,
        }
    }

    /// The largest finite value (what larger values and infinities saturate to).
    pub fn max(self) -> f32 {
        match self {
            Fp8Format::E4m3fn => 448.0,
            Fp8Format::E5m2 | Fp8Format::E5m2fnuz => 57344.0,
            Fp8Format::E4m3fnuz => 240.0,
        }
    }

    /// The byte a NaN input becomes: 0x7F (OCP formats) or 0x80 (fnuz formats).
    pub fn nan_bits(self) -> u8 {
        match self {
            Fp8Format::E4m3fn | Fp8Format::E5m2 => 0x7F,
            Fp8Format::E4m3fnuz | Fp8Format::E5m2fnuz => 0x80,
        }
    }

    /// (exponent bits, mantissa bits, exponent bias)
    fn params(self) -> (u32, u32, i32) {
        match self {
            Fp8Format::E4m3fn => (4, 3, 7),
            Fp8Format::E5m2 => (5, 2, 15),
            Fp8Format::E4m3fnuz => (4, 3, 8),
            Fp8Format::E5m2fnuz => (5, 2, 16),
        }
    }

    /// Decodes one FP8 byte to `f32` (exactly: every FP8 value is an `f32`). Handy for checking
    /// or printing outputs; e.g. `Fp8Format::E4m3fn.to_f32(0x38) == 1.0`.
    pub fn to_f32(self, bits: u8) -> f32 {
        let (ebits, mbits, bias) = self.params();
        let negative = bits & 0x80 != 0;
        let exp = ((bits >> mbits) & ((1u8 << ebits) - 1)) as i32;
        let man = (bits & ((1u8 << mbits) - 1)) as i32;
        match self {
            Fp8Format::E4m3fn if bits & 0x7F == 0x7F => return f32::NAN,
            Fp8Format::E5m2 if exp == 31 => {
                return if man != 0 {
                    f32::NAN
                } else if negative {
                    f32::NEG_INFINITY
                } else {
                    f32::INFINITY
                }
            }
            Fp8Format::E4m3fnuz | Fp8Format::E5m2fnuz if bits == 0x80 => return f32::NAN,
            _ => {}
        }
        let magnitude = if exp == 0 {
            man as f32 * pow2(1 - bias - mbits as i32)
        } else {
            ((1 << mbits) + man) as f32 * pow2(exp - bias - mbits as i32)
        };
        if negative {
            -magnitude
        } else {
            magnitude
        }
    }
}

/// 2^k for -126 <= k <= 127, exactly.
fn pow2(k: i32) -> f32 {
    debug_assert!((-126..=127).contains(&k));
    f32::from_bits(((k + 127) as u32) << 23)
}

impl From<Fp8Format> for Dtype {
    fn from(format: Fp8Format) -> Dtype {
        format.dtype()
    }
}

impl fmt::Display for Fp8Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dtype().name())
    }
}

/// A backend of the library (`MLAKV_BACKEND_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// The first usable backend that can reach the memory (the default).
    #[default]
    Auto,
    /// Kokkos on the host: the oracle and the CPU fallback. Synchronous.
    Reference,
    /// NVIDIA CUDA: device memory, asynchronous on the given stream.
    Cuda,
    /// AMD HIP: device memory, asynchronous on the given stream.
    Hip,
    /// A code this version of the crate does not know (a newer library may report one).
    Other(i32),
}

impl Backend {
    /// The C code, `MLAKV_BACKEND_*`.
    pub fn code(self) -> i32 {
        match self {
            Backend::Auto => sys::MLAKV_BACKEND_AUTO,
            Backend::Reference => sys::MLAKV_BACKEND_REFERENCE,
            Backend::Cuda => sys::MLAKV_BACKEND_CUDA,
            Backend::Hip => sys::MLAKV_BACKEND_HIP,
            Backend::Other(code) => code,
        }
    }

    /// The backend of a C code.
    pub fn from_code(code: i32) -> Backend {
        match code {
            sys::MLAKV_BACKEND_AUTO => Backend::Auto,
            sys::MLAKV_BACKEND_REFERENCE => Backend::Reference,
            sys::MLAKV_BACKEND_CUDA => Backend::Cuda,
            sys::MLAKV_BACKEND_HIP => Backend::Hip,
            other => Backend::Other(other),
        }
    }
}

/// Programmatic dependent launch (CUDA sm_90+; ignored elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Pdl {
    /// On where the device supports it (the default).
    #[default]
    Auto,
    /// On where the device supports it; ignored elsewhere.
    On,
    /// Off.
    Off,
}

impl Pdl {
    /// The C code, `MLAKV_PDL_*`.
    pub fn code(self) -> i32 {
        match self {
            Pdl::Auto => sys::MLAKV_PDL_AUTO,
            Pdl::On => sys::MLAKV_PDL_ON,
            Pdl::Off => sys::MLAKV_PDL_OFF,
        }
    }
}

/// How many scale multipliers a call has (`mlakv_pack_args.scale_granularity`, since 0.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ScaleGranularity {
    /// One multiplier for K and one for V (the default).
    #[default]
    PerTensor,
    /// `h` multipliers for K and `h` for V, read from memory (head `j` of `k_out` uses the K
    /// multiplier `j`, head `j` of `v_out` the V multiplier `j`); amax outputs then hold `h`
    /// floats each.
    PerHead,
    /// A code this version of the crate does not know (the library refuses it with
    /// [`Status::InvalidArgument`](crate::Status::InvalidArgument) unless it knows it).
    Other(i32),
}

impl ScaleGranularity {
    /// The C code, `MLAKV_SCALE_*`.
    pub fn code(self) -> i32 {
        match self {
            ScaleGranularity::PerTensor => sys::MLAKV_SCALE_PER_TENSOR,
            ScaleGranularity::PerHead => sys::MLAKV_SCALE_PER_HEAD,
            ScaleGranularity::Other(code) => code,
        }
    }

    /// The granularity of a C code.
    pub fn from_code(code: i32) -> ScaleGranularity {
        match code {
            sys::MLAKV_SCALE_PER_TENSOR => ScaleGranularity::PerTensor,
            sys::MLAKV_SCALE_PER_HEAD => ScaleGranularity::PerHead,
            other => ScaleGranularity::Other(other),
        }
    }
}

/// A bfloat16 number, stored as its bit pattern (the `u16` a `torch.bfloat16` tensor holds).
///
/// `#[repr(transparent)]` over `u16`, so a `&[u16]` of bf16 bits can be viewed as `&[Bf16]`
/// ([`Bf16::from_bits_slice`]), or passed directly with `Tensor::from_bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct Bf16(pub u16);

impl Bf16 {
    /// The value with these bits.
    pub const fn from_bits(bits: u16) -> Bf16 {
        Bf16(bits)
    }

    /// The bits.
    pub const fn to_bits(self) -> u16 {
        self.0
    }

    /// Rounds an `f32` to the nearest bf16 (ties to even; NaN stays NaN, quieted).
    pub fn from_f32(x: f32) -> Bf16 {
        let b = x.to_bits();
        if x.is_nan() {
            return Bf16(((b >> 16) as u16) | 0x0040);
        }
        let rounding = 0x7FFF + ((b >> 16) & 1);
        Bf16((b.wrapping_add(rounding) >> 16) as u16)
    }

    /// Widens to `f32` exactly (what the library does first).
    pub fn to_f32(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }

    /// Views a slice of bf16 bit patterns as `&[Bf16]` (no copy).
    pub fn from_bits_slice(bits: &[u16]) -> &[Bf16] {
        // SAFETY: Bf16 is repr(transparent) over u16: same size, alignment and validity.
        unsafe { std::slice::from_raw_parts(bits.as_ptr() as *const Bf16, bits.len()) }
    }
}

impl From<f32> for Bf16 {
    fn from(x: f32) -> Bf16 {
        Bf16::from_f32(x)
    }
}

impl From<Bf16> for f32 {
    fn from(x: Bf16) -> f32 {
        x.to_f32()
    }
}

/// An IEEE binary16 number, stored as its bit pattern (the `u16` a `torch.float16` tensor
/// holds). `#[repr(transparent)]` over `u16`, like [`Bf16`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct F16(pub u16);

impl F16 {
    /// The value with these bits.
    pub const fn from_bits(bits: u16) -> F16 {
        F16(bits)
    }

    /// The bits.
    pub const fn to_bits(self) -> u16 {
        self.0
    }

    /// Rounds an `f32` to the nearest fp16 (ties to even, gradual underflow, overflow to
    /// infinity; NaN stays NaN, quieted).
    pub fn from_f32(x: f32) -> F16 {
        let b = x.to_bits();
        let sign = ((b >> 16) & 0x8000) as u16;
        let exp = ((b >> 23) & 0xFF) as i32;
        let man = b & 0x007F_FFFF;
        if exp == 0xFF {
            let payload = if man != 0 {
                0x0200 | (man >> 13) as u16
            } else {
                0
            };
            return F16(sign | 0x7C00 | payload);
        }
        let e = exp - 127; // unbiased exponent (f32 subnormals and zero: far below -25)
        if e > 15 {
            return F16(sign | 0x7C00);
        }
        if e >= -14 {
            // Normal range: keep 10 of the 23 mantissa bits, round the other 13 to nearest even.
            // A carry out of the mantissa correctly bumps the exponent (up to infinity).
            let mut h = (((e + 15) as u32) << 10) | (man >> 13);
            let rest = man & 0x1FFF;
            if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) {
                h += 1;
            }
            return F16(sign | h as u16);
        }
        if e < -25 {
            return F16(sign); // below half the smallest subnormal 2^-24: rounds to zero
        }
        // Subnormal: count units of 2^-24. The value is full * 2^(e - 23) = full * 2^(e + 1)
        // units, with e + 1 <= -14: shift right by -(e + 1) and round to nearest even.
        let full = man | 0x0080_0000;
        let shift = (-(e + 1)) as u32;
        let q = full >> shift;
        let rest = full & ((1u32 << shift) - 1);
        let half = 1u32 << (shift - 1);
        let mut h = q;
        if rest > half || (rest == half && q & 1 == 1) {
            h += 1; // may become 0x400, the smallest normal: correct
        }
        F16(sign | h as u16)
    }

    /// Widens to `f32` exactly, subnormals included (what the library does first).
    pub fn to_f32(self) -> f32 {
        let h = self.0 as u32;
        let sign = (h & 0x8000) << 16;
        let exp = (h >> 10) & 0x1F;
        let man = h & 0x3FF;
        if exp == 0 {
            let magnitude = man as f32 * pow2(-24);
            return if sign != 0 { -magnitude } else { magnitude };
        }
        if exp == 0x1F {
            return f32::from_bits(sign | 0x7F80_0000 | (man << 13));
        }
        f32::from_bits(sign | ((exp + 112) << 23) | (man << 13))
    }

    /// Views a slice of fp16 bit patterns as `&[F16]` (no copy).
    pub fn from_bits_slice(bits: &[u16]) -> &[F16] {
        // SAFETY: F16 is repr(transparent) over u16: same size, alignment and validity.
        unsafe { std::slice::from_raw_parts(bits.as_ptr() as *const F16, bits.len()) }
    }
}

impl From<f32> for F16 {
    fn from(x: f32) -> F16 {
        F16::from_f32(x)
    }
}

impl From<F16> for f32 {
    fn from(x: F16) -> f32 {
        x.to_f32()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_conversions() {
        assert_eq!(Bf16::from_f32(1.0).0, 0x3F80);
        assert_eq!(Bf16::from_f32(-1000.0).0, 0xC47A);
        assert_eq!(Bf16::from_f32(-0.0).0, 0x8000);
        assert_eq!(Bf16::from_f32(f32::INFINITY).0, 0x7F80);
        assert!(Bf16::from_f32(f32::NAN).to_f32().is_nan());
        // ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7
        assert_eq!(Bf16::from_f32(1.0 + 1.0 / 256.0).0, 0x3F80);
        assert_eq!(Bf16::from_f32(1.0 + 3.0 / 256.0).0, 0x3F82);
        // the largest f32 rounds to infinity
        assert_eq!(Bf16::from_f32(f32::MAX).0, 0x7F80);
        for bits in 0..=u16::MAX {
            let x = Bf16(bits);
            if !x.to_f32().is_nan() {
                assert_eq!(Bf16::from_f32(x.to_f32()), x);
            }
        }
    }

    #[test]
    fn f16_conversions() {
        assert_eq!(F16::from_f32(1.0).0, 0x3C00);
        assert_eq!(F16::from_f32(-2.0).0, 0xC000);
        assert_eq!(F16::from_f32(65504.0).0, 0x7BFF);
        assert_eq!(F16::from_f32(65519.99).0, 0x7BFF);
        assert_eq!(F16::from_f32(65520.0).0, 0x7C00); // ties to even: rounds up to infinity
        assert_eq!(F16::from_f32(-0.0).0, 0x8000);
        assert_eq!(F16::from_f32(2f32.powi(-24)).0, 0x0001); // smallest subnormal
        assert_eq!(F16::from_f32(2f32.powi(-25)).0, 0x0000); // tie to even: zero
        assert_eq!(F16::from_f32(1.5 * 2f32.powi(-25)).0, 0x0001);
        assert_eq!(F16::from_f32(3.0 * 2f32.powi(-25)).0, 0x0002); // tie 1.5 units -> 2
        assert_eq!(F16::from_f32(2f32.powi(-14)).0, 0x0400); // smallest normal
        assert_eq!(F16::from_f32(2f32.powi(-14) - 2f32.powi(-25)).0, 0x0400); // rounds up to it
        assert_eq!(F16(0x0001).to_f32(), 2f32.powi(-24));
        assert_eq!(F16(0x83FF).to_f32(), -1023.0 * 2f32.powi(-24));
        assert_eq!(F16(0x7C00).to_f32(), f32::INFINITY);
        assert!(F16(0x7E00).to_f32().is_nan());
        assert!(F16::from_f32(f32::NAN).to_f32().is_nan());
        for bits in 0..=u16::MAX {
            let x = F16(bits);
            let wide = x.to_f32();
            if wide.is_nan() {
                assert!(F16::from_f32(wide).to_f32().is_nan());
            } else {
                assert_eq!(F16::from_f32(wide), x, "{:#06x}", bits);
                // halfway to the next value up (in magnitude) rounds to the even one of the two
                if bits & 0x7FFF < 0x7BFF {
                    let next = F16(bits + 1).to_f32();
                    let mid = (wide as f64 + next as f64) / 2.0;
                    let want = if bits & 1 == 0 { x } else { F16(bits + 1) };
                    assert_eq!(F16::from_f32(mid as f32), want, "mid above {:#06x}", bits);
                }
            }
        }
    }

    #[test]
    fn fp8_decode() {
        let e4 = Fp8Format::E4m3fn;
        assert_eq!(e4.to_f32(0x38), 1.0);
        assert_eq!(e4.to_f32(0xB8), -1.0);
        assert_eq!(e4.to_f32(0x7E), 448.0);
        assert_eq!(e4.to_f32(0xFE), -448.0);
        assert_eq!(e4.to_f32(0x01), 2f32.powi(-9));
        assert!(e4.to_f32(0x7F).is_nan() && e4.to_f32(0xFF).is_nan());
        assert_eq!(e4.to_f32(0x80).to_bits(), (-0.0f32).to_bits());
        let e5 = Fp8Format::E5m2;
        assert_eq!(e5.to_f32(0x7B), 57344.0);
        assert_eq!(e5.to_f32(0x64), 1024.0);
        assert_eq!(e5.to_f32(0x7C), f32::INFINITY);
        assert!(e5.to_f32(0x7F).is_nan());
        assert_eq!(e5.to_f32(0x01), 2f32.powi(-16));
        let e4z = Fp8Format::E4m3fnuz;
        assert_eq!(e4z.to_f32(0x7F), 240.0);
        assert_eq!(e4z.to_f32(0x40), 1.0);
        assert!(e4z.to_f32(0x80).is_nan());
        let e5z = Fp8Format::E5m2fnuz;
        assert_eq!(e5z.to_f32(0x7F), 57344.0);
        assert_eq!(e5z.to_f32(0x40), 1.0);
        assert_eq!(e5z.to_f32(0x01), 2f32.powi(-17));
        for f in Fp8Format::ALL.iter() {
            assert!(f.to_f32(f.nan_bits()).is_nan());
            assert_eq!(Dtype::from(*f).fp8_format(), Some(*f));
        }
    }
}
