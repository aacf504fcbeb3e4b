package mlakv

// A pure-Go model of the operation, written independently of the library (float64 arithmetic
// on exact values rather than the library's integer bit tricks): the third opinion next to the
// library through the binding and the library through the raw C API (internal/capi).

import (
	"fmt"
	"math"
	"testing"
)

// bf16ToF32 widens bfloat16 bits exactly.
func bf16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// fp16ToF32 widens IEEE half bits exactly (subnormals included), from the fields.
func fp16ToF32(h uint16) float32 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e := int(h>>10) & 0x1F
	m := float64(h & 0x3FF)
	switch {
	case e == 0x1F && m == 0:
		return float32(math.Inf(int(sign)))
	case e == 0x1F:
		return float32(math.NaN())
	case e == 0:
		return float32(sign * math.Ldexp(m, -24))
	}
	return float32(sign * math.Ldexp(1+m/1024, e-15))
}

// bf16Exact returns the bf16 bits of f, failing the test if f is not exactly representable.
func bf16Exact(t testing.TB, f float32) uint16 {
	b := uint16(math.Float32bits(f) >> 16)
	if r := bf16ToF32(b); !(r == f && math.Signbit(float64(r)) == math.Signbit(float64(f))) && !(f != f && r != r) {
		t.Fatalf("%v is not exact in bf16", f)
	}
	return b
}

// fp16Exact returns the fp16 bits of f, failing the test if f is not exactly representable.
func fp16Exact(t testing.TB, f float32) uint16 {
	var sign uint16
	if math.Signbit(float64(f)) {
		sign = 0x8000
	}
	a := math.Abs(float64(f))
	var b uint16
	switch {
	case f != f:
		b = 0x7E00
	case math.IsInf(a, 0):
		b = sign | 0x7C00
	case a == 0:
		b = sign
	case a < math.Ldexp(1, -14):
		b = sign | uint16(a*math.Ldexp(1, 24))
	default:
		fr, e := math.Frexp(a) // a = fr * 2^e, fr in [0.5, 1)
		b = sign | uint16(e-1+15)<<10 | uint16((fr*2-1)*1024)
	}
	if r := fp16ToF32(b); !(r == f && math.Signbit(float64(r)) == math.Signbit(float64(f))) && !(f != f && r != r) {
		t.Fatalf("%v is not exact in fp16 (got %v from 0x%04X)", f, r, b)
	}
	return b
}

type fp8Spec struct {
	mant    int     // mantissa bits
	emin    int     // exponent of the smallest normal
	bias    int     // exponent bias
	max     float64 // largest finite value
	nan     byte    // the NaN code
	negZero bool    // whether -0 exists (0x80)
}

var fp8Specs = map[Dtype]fp8Spec{
	E4M3FN:   {3, -6, 7, 448, 0x7F, true},
	E5M2:     {2, -14, 15, 57344, 0x7F, true},
	E4M3FNUZ: {3, -7, 8, 240, 0x80, false},
	E5M2FNUZ: {2, -15, 16, 57344, 0x80, false},
}

// encodeFP8 rounds the fp32 value p to the format: nearest even, gradual underflow, saturation.
func encodeFP8(p float32, f Dtype) byte {
	sp, ok := fp8Specs[f]
	if !ok {
		panic(fmt.Sprintf("not an fp8 format: %v", f))
	}
	x := float64(p) // exact
	if math.IsNaN(x) {
		return sp.nan
	}
	var sign byte
	if math.Signbit(x) {
		sign = 0x80
	}
	a := math.Abs(x)
	// the quantum (spacing) of the format at a: 2^(max(e, emin) - mant), e = floor(log2 a)
	e := sp.emin
	if a >= math.Ldexp(1, sp.emin) {
		_, fe := math.Frexp(a)
		e = fe - 1
	}
	q := math.Ldexp(1, e-sp.mant)
	r := math.RoundToEven(a/q) * q // a/q and the product are exact in float64
	if r > sp.max || math.IsInf(a, 0) {
		r = sp.max
	}
	var mag byte
	if r < math.Ldexp(1, sp.emin) {
		mag = byte(r / math.Ldexp(1, sp.emin-sp.mant)) // subnormal: multiples of the smallest quantum
	} else {
		fr, fe := math.Frexp(r)
		mag = byte(fe-1+sp.bias)<<sp.mant | byte((fr*2-1)*float64(int(1)<<sp.mant))
	}
	if mag == 0 && !sp.negZero {
		return 0
	}
	return sign | mag
}

// quantize is Q(x * m): one fp32 multiply (Go rounds a float32 product to nearest even and does
// not fuse a lone multiply), then the fp8 rounding.
func quantize(x, m float32, f Dtype) byte { return encodeFP8(x*m, f) }

// view3 is a [s, h, d] (or [s, d] with sh ignored) element layout for the oracle.
type view3 struct {
	off, st, sh int
}

func (v view3) at(t, j, k int) int { return v.off + t*v.st + j*v.sh + k }

// packOracle computes the expected outputs in place (k_out, v_out are the full output buffers;
// bytes outside the views are left as they are).
func packOracle(s, h, dn, dr, dv int, in func(i int) float32, kn, kp, vv view3,
	kOut []byte, ko view3, vOut []byte, vo view3, mk, mv float32, f Dtype) {
	for t := 0; t < s; t++ {
		for j := 0; j < h; j++ {
			for k := 0; k < dn; k++ {
				kOut[ko.at(t, j, k)] = quantize(in(kn.at(t, j, k)), mk, f)
			}
			for k := 0; k < dr; k++ {
				kOut[ko.at(t, j, dn+k)] = quantize(in(kp.at(t, 0, k)), mk, f)
			}
			for k := 0; k < dv; k++ {
				vOut[vo.at(t, j, k)] = quantize(in(vv.at(t, j, k)), mv, f)
			}
		}
	}
}

// TestOracleFixedPoints pins the pure-Go encoder to the hand-derived values of the brief, so the
// random comparisons below stand on a checked model.
func TestOracleFixedPoints(t *testing.T) {
	for _, c := range []struct {
		x    float32
		f    Dtype
		want byte
	}{
		{1, E4M3FN, 0x38}, {-1, E4M3FN, 0xB8}, {1000, E4M3FN, 0x7E}, {-1000, E4M3FN, 0xFE},
		{float32(math.Inf(1)), E4M3FN, 0x7E}, {float32(math.NaN()), E4M3FN, 0x7F},
		{float32(math.Copysign(0, -1)), E4M3FN, 0x80}, {0x1p-10, E4M3FN, 0x00}, {0x1.8p-10, E4M3FN, 0x01},
		{0x1p-9, E4M3FN, 0x01}, {3 * 0x1p-10, E4M3FN, 0x02}, {1.0625, E4M3FN, 0x38}, {1.1875, E4M3FN, 0x3A},
		{1000, E5M2, 0x64}, {float32(math.Inf(1)), E5M2, 0x7B}, {float32(math.NaN()), E5M2, 0x7F},
		{61440, E5M2, 0x7B}, {480, E4M3FN, 0x7E},
	} {
		if got := encodeFP8(c.x, c.f); got != c.want {
			t.Errorf("encodeFP8(%v, %v) = 0x%02X, want 0x%02X", c.x, c.f, got, c.want)
		}
	}
}
