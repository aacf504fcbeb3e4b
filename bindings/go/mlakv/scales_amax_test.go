package mlakv

// Per-head scales and amax outputs (mlakv 0.2) on the reference backend, the 0.2 argument
// struct, and the status list against the header.
//
// The contract (mlakv.h, above mlakv_pack_args): with MLAKV_SCALE_PER_HEAD, head j of k_out (its
// k_nope part and its copy of k_pe) uses k_scale_inv_ptr[j] and head j of v_out
// v_scale_inv_ptr[j]; k_amax / v_amax accumulate max(old, max |x|) over the inputs before
// scaling (per tensor: one float over k_nope and k_pe / over v; per head: k_amax[j] over head j
// of k_nope and all of k_pe, v_amax[j] over head j of v), NaN ignored, inf counted, +0 when
// every element is NaN, the maximum taken on int32 bit patterns.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/mlakv/mlakv/bindings/go/internal/capi"
)

// -------------------------------------------------------------------------------------------
// The header: status codes and the argument struct

// headerPaths returns the mlakv.h files to compare with: the installed one (pkg-config's
// includedir) and the source tree's, where they exist.
func headerPaths(t *testing.T) []string {
	var out []string
	if dir, err := exec.Command("pkg-config", "--variable=includedir", "mlakv").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(dir)), "mlakv", "mlakv.h")
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	if p, err := filepath.Abs(filepath.Join("..", "..", "..", "include", "mlakv", "mlakv.h")); err == nil {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatal("no mlakv.h found (pkg-config --variable=includedir mlakv, or the source tree)")
	}
	return out
}

func TestStatusListMatchesHeader(t *testing.T) {
	re := regexp.MustCompile(`(?m)^#define\s+(MLAKV_(?:OK|ERR_\w+))\s+(-?\d+)\b`)
	for _, path := range headerPaths(t) {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var codes []int
		for _, m := range re.FindAllStringSubmatch(string(text), -1) {
			code, _ := strconv.Atoi(m[2])
			codes = append(codes, code)
			s := Status(code)
			if s.String() != m[1] {
				t.Errorf("%s: %s = %d, but Status(%d).String() = %q", path, m[1], code, code, s.String())
			}
			if code != 0 && (!strings.HasPrefix(s.Error(), m[1]+": ") || strings.Contains(s.Error(), "unknown status code")) {
				t.Errorf("%s: Status(%d).Error() = %q", path, code, s.Error())
			}
			if code != 0 && !errors.Is(&Error{Status: Status(code)}, s) {
				t.Errorf("errors.Is does not see status %d", code)
			}
		}
		sort.Ints(codes)
		if len(codes) != len(statusText) || codes[len(codes)-1] != len(statusText)-1 || codes[len(codes)-1] != int(ErrOverlapUndecided) {
			t.Errorf("%s defines codes %v; the binding names %d (0..%d)", path, codes, len(statusText), len(statusText)-1)
		}
	}
}

func TestPackArgsInitSized(t *testing.T) {
	defaults := capi.Defaults() // MLAKV_PACK_ARGS_INIT as the C compiler sees it
	size := len(defaults)
	if size != 480 {
		t.Fatalf("sizeof(mlakv_pack_args) = %d, want 480", size)
	}
	le := binary.LittleEndian
	st, b := capi.InitSized(size, 1024, 0x5A)
	if st != 0 || le.Uint64(b) != uint64(size) || !bytes.Equal(b[8:size], defaults[8:]) || !allByte(b[size:], 0x5A) {
		t.Errorf("mlakv_pack_args_init_sized(args, %d): status %d, struct_size %d, defaults %v, untouched tail %v",
			size, st, le.Uint64(b), bytes.Equal(b[8:size], defaults[8:]), allByte(b[size:], 0x5A))
	}
	// a newer caller's larger struct: zeros past the library's fields
	st, b = capi.InitSized(600, 1024, 0x5A)
	if st != 0 || le.Uint64(b) != 600 || !allByte(b[size:600], 0) || !allByte(b[600:], 0x5A) {
		t.Errorf("init_sized(600): status %d, struct_size %d", st, le.Uint64(b))
	}
	// below the 0.1 size: MLAKV_ERR_STRUCT_SIZE, nothing written
	if st, b = capi.InitSized(455, 1024, 0x5A); st != int32(ErrStructSize) || !allByte(b, 0x5A) {
		t.Errorf("init_sized(455): status %d, wrote %v", st, !allByte(b, 0x5A))
	}
	// the exported 0.1 entry point writes the 456-byte 0.1 layout only
	b = capi.InitLegacy(1024, 0x5A)
	if le.Uint64(b) != 456 || !bytes.Equal(b[8:456], defaults[8:456]) || !allByte(b[456:], 0x5A) {
		t.Errorf("mlakv_pack_args_init: struct_size %d, 0.1 defaults %v, wrote past 456: %v",
			le.Uint64(b), bytes.Equal(b[8:456], defaults[8:456]), !allByte(b[456:], 0x5A))
	}
	// the 0.2 defaults: per tensor, reserved 0, no amax
	if !allByte(defaults[456:], 0) {
		t.Errorf("the 0.2 fields' defaults are not all zero: % x", defaults[456:])
	}
}

func allByte(b []byte, v byte) bool {
	for _, x := range b {
		if x != v {
			return false
		}
	}
	return true
}

// -------------------------------------------------------------------------------------------
// Helpers

// pow2Scales: distinct powers of two per head, K rising, V falling.
func pow2Scales(h int) (ks, vs []float32) {
	for j := 0; j < h; j++ {
		ks = append(ks, float32(math.Exp2(float64(j-3))))
		vs = append(vs, float32(math.Exp2(float64(2-j))))
	}
	return ks, vs
}

// exactIn stores vals in dt (each value must be exact in it) and returns a maker of views into
// that one slice (starting at element off) and the element getter (exact float32 values).
func exactIn(t *testing.T, dt Dtype, vals []float32) (func(off int, shape, strides []int64) Tensor, func(i int) float32) {
	t.Helper()
	raw := make([]byte, len(vals)*dt.Size())
	for i, v := range vals {
		switch dt {
		case BF16:
			binary.LittleEndian.PutUint16(raw[2*i:], bf16Exact(t, v))
		case FP16:
			binary.LittleEndian.PutUint16(raw[2*i:], fp16Exact(t, v))
		case FP32:
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
		}
	}
	return typedBuf(dt, raw), elemAt(dt, raw)
}

// subnormalsOf: subnormals of the input type, exact in it.
func subnormalsOf(dt Dtype) []float32 {
	switch dt {
	case FP16:
		return []float32{0x1p-20, -0x1p-17, 0x1p-24}
	case BF16:
		return []float32{0x1p-130, -3 * 0x1p-133, 0x1p-133}
	}
	return []float32{0x1p-130, -3 * 0x1p-133, math.Float32frombits(1)}
}

// headValues: [s, h, dn + dv] values, head j of the k_nope part scaled by kf[j] and of the v part
// by vf[j] (powers of two), 7-bit mantissas (exact in bf16 and fp16), with NaN (both signs), -0,
// +0 and subnormals sprinkled in; and k_pe [s, dr].
func headValues(r *rand.Rand, dt Dtype, s, h, dn, dr, dv int, kf, vf []float32) (kv, pe []float32) {
	specials := append([]float32{float32(math.NaN()), math.Float32frombits(0xFFC00001), negZero, 0}, subnormalsOf(dt)...)
	val := func(f float32) float32 {
		if r.Intn(10) == 0 {
			return specials[r.Intn(len(specials))]
		}
		x := (1 + float32(r.Intn(128))/128) * float32(math.Exp2(float64(r.Intn(6)-3))) * f
		if r.Intn(2) == 0 {
			x = -x
		}
		return x
	}
	w := dn + dv
	kv = make([]float32, s*h*w)
	for tk := 0; tk < s; tk++ {
		for j := 0; j < h; j++ {
			for d := 0; d < w; d++ {
				f := kf[j]
				if d >= dn {
					f = vf[j]
				}
				kv[(tk*h+j)*w+d] = val(f)
			}
		}
	}
	pe = make([]float32, s*dr)
	for i := range pe {
		pe[i] = val(0.5)
	}
	return kv, pe
}

// amaxLoop: max |x| over the elements, NaN skipped, inf counted, +0 when none.
func amaxLoop(xs ...float32) float32 {
	m := float32(0)
	for _, x := range xs {
		if x != x {
			continue
		}
		if a := float32(math.Abs(float64(x))); a > m {
			m = a
		}
	}
	return m
}

// accumulate: the stored value after a call, max(old, m) compared as int32 bit patterns.
func accumulate(old, m float32) float32 {
	if int32(math.Float32bits(old)) >= int32(math.Float32bits(m)) {
		return old
	}
	return m
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// -------------------------------------------------------------------------------------------
// Per-head scales

func TestPerHeadScalesEqualEachHeadSeparately(t *testing.T) {
	const s, h, dn, dr, dv = 7, 6, 32, 16, 24
	const w = dn + dv
	r := rand.New(rand.NewSource(5))
	ks, vs := pow2Scales(h)
	for _, dt := range []Dtype{BF16, FP16, FP32} {
		for _, f := range fp8Formats {
			kv, pe := randomBits(r, dt, s*h*w), randomBits(r, dt, s*dr)
			view, peView := typedBuf(dt, kv), typedBuf(dt, pe)
			at, peAt := elemAt(dt, kv), elemAt(dt, pe)
			a := NewArgs()
			a.KNope = view(0, []int64{s, h, dn}, []int64{h * w, w, 1})
			a.V = view(dn, []int64{s, h, dv}, []int64{h * w, w, 1})
			a.KPe = peView(0, []int64{s, dr}, []int64{dr, 1})
			kOut, vOut := poisoned(s*h*(dn+dr)), poisoned(s*h*dv)
			a.KOut, a.VOut = FP8Tensor(kOut, f, s, h, dn+dr), FP8Tensor(vOut, f, s, h, dv)
			a.KScaleInvPerHead, a.VScaleInvPerHead = ks, vs
			if plan, err := Plan(a); err != nil || !strings.Contains(plan, "scales=per-head amax=none") {
				t.Fatalf("plan %q, %v", plan, err)
			}
			if err := PackFP8(a); err != nil {
				t.Fatalf("%v -> %v: %v", dt, f, err)
			}
			for j := 0; j < h; j++ {
				b := NewArgs()
				b.KNope = view(j*w, []int64{s, 1, dn}, []int64{h * w, w, 1})
				b.V = view(j*w+dn, []int64{s, 1, dv}, []int64{h * w, w, 1})
				b.KPe = a.KPe
				kj, vj := poisoned(s*(dn+dr)), poisoned(s*dv)
				b.KOut, b.VOut = FP8Tensor(kj, f, s, 1, dn+dr), FP8Tensor(vj, f, s, 1, dv)
				b.KScaleInv, b.VScaleInv = ks[j], vs[j]
				if err := PackFP8(b); err != nil {
					t.Fatal(err)
				}
				for tk := 0; tk < s; tk++ {
					fk := kOut[(tk*h+j)*(dn+dr) : (tk*h+j+1)*(dn+dr)]
					fv := vOut[(tk*h+j)*dv : (tk*h+j+1)*dv]
					if d := diff(fk, kj[tk*(dn+dr):(tk+1)*(dn+dr)]); d != "" {
						t.Fatalf("%v -> %v head %d token %d, k_out: %s", dt, f, j, tk, d)
					}
					if d := diff(fv, vj[tk*dv:(tk+1)*dv]); d != "" {
						t.Fatalf("%v -> %v head %d token %d, v_out: %s", dt, f, j, tk, d)
					}
					for d := 0; d < dn; d++ { // the Go model
						if got, want := fk[d], quantize(at((tk*h+j)*w+d), ks[j], f); got != want {
							t.Fatalf("%v -> %v head %d: k_nope byte 0x%02X, model 0x%02X", dt, f, j, got, want)
						}
					}
					for d := 0; d < dr; d++ {
						if got, want := fk[dn+d], quantize(peAt(tk*dr+d), ks[j], f); got != want {
							t.Fatalf("%v -> %v head %d: k_pe byte 0x%02X, model 0x%02X", dt, f, j, got, want)
						}
					}
					for d := 0; d < dv; d++ {
						if got, want := fv[d], quantize(at((tk*h+j)*w+dn+d), vs[j], f); got != want {
							t.Fatalf("%v -> %v head %d: v byte 0x%02X, model 0x%02X", dt, f, j, got, want)
						}
					}
				}
			}
			// the C API called directly (C memory) agrees
			bufs := [][]byte{append([]byte(nil), kv...), append([]byte(nil), pe...), poisoned(len(kOut)), poisoned(len(vOut))}
			es, fs := int64(dt.Size()), int32(f)
			st, msg := capi.Pack(capi.Call{T: [5]capi.Tensor{
				{Buf: 0, Dtype: int32(dt), Shape: []int64{s, h, dn}, Strides: []int64{h * w, w, 1}},
				{Buf: 1, Dtype: int32(dt), Shape: []int64{s, dr}, Strides: []int64{dr, 1}},
				{Buf: 0, Offset: int(dn * es), Dtype: int32(dt), Shape: []int64{s, h, dv}, Strides: []int64{h * w, w, 1}},
				{Buf: 2, Dtype: fs, Shape: []int64{s, h, dn + dr}, Strides: []int64{h * (dn + dr), dn + dr, 1}},
				{Buf: 3, Dtype: fs, Shape: []int64{s, h, dv}, Strides: []int64{h * dv, dv, 1}},
			}, KScaleInv: 1, VScaleInv: 1, Backend: int32(BackendReference), Granularity: 1, KScales: ks, VScales: vs}, bufs)
			if st != 0 {
				t.Fatalf("C API: status %d: %s", st, msg)
			}
			if d := diff(bufs[2], kOut); d != "" {
				t.Fatalf("%v -> %v k_out vs the C API: %s", dt, f, d)
			}
			if d := diff(bufs[3], vOut); d != "" {
				t.Fatalf("%v -> %v v_out vs the C API: %s", dt, f, d)
			}
		}
	}
}

// The same call with per-head multipliers and amax outputs in C memory (KScaleInvPtr /
// KAmaxPtr with ScalePerHead) and in Go slices gives the same bytes and amax values.
func TestPerHeadDevicePointersEqualGoSlices(t *testing.T) {
	const s, h, dn, dr, dv = 5, 4, 16, 8, 16
	r := rand.New(rand.NewSource(6))
	kvVals, peVals := headValues(r, FP16, s, h, dn, dr, dv, []float32{1, 2, 4, 8}, []float32{8, 4, 2, 1})
	view, _ := exactIn(t, FP16, kvVals)
	peView, _ := exactIn(t, FP16, peVals)
	ks, vs := pow2Scales(h)
	run := func(device bool) ([]byte, []byte, []float32, []float32) {
		a := NewArgs()
		a.KNope = view(0, []int64{s, h, dn}, []int64{h * (dn + dv), dn + dv, 1})
		a.V = view(dn, []int64{s, h, dv}, []int64{h * (dn + dv), dn + dv, 1})
		a.KPe = peView(0, []int64{s, dr}, []int64{dr, 1})
		kOut, vOut := poisoned(s*h*(dn+dr)), poisoned(s*h*dv)
		a.KOut, a.VOut = FP8Tensor(kOut, E5M2, s, h, dn+dr), FP8Tensor(vOut, E5M2, s, h, dv)
		if device {
			cks, cvs := capi.NewCFloats(ks), capi.NewCFloats(vs)
			cka, cva := capi.NewCFloats(make([]float32, h)), capi.NewCFloats(make([]float32, h))
			defer func() {
				for _, c := range []capi.CFloats{cks, cvs, cka, cva} {
					c.Free()
				}
			}()
			a.ScaleGranularity = ScalePerHead
			a.KScaleInvPtr, a.VScaleInvPtr = cks.Addr(), cvs.Addr()
			a.KAmaxPtr, a.VAmaxPtr = cka.Addr(), cva.Addr()
			if err := PackFP8(a); err != nil {
				t.Fatal(err)
			}
			return kOut, vOut, cka.Values(), cva.Values()
		}
		ka, va := make([]float32, h), make([]float32, h)
		a.KScaleInvPerHead, a.VScaleInvPerHead = ks, vs
		a.KAmax, a.VAmax = ka, va
		if err := PackFP8(a); err != nil {
			t.Fatal(err)
		}
		return kOut, vOut, ka, va
	}
	k1, v1, ka1, va1 := run(false)
	k2, v2, ka2, va2 := run(true)
	if d := diff(k2, k1); d != "" {
		t.Errorf("k_out: %s", d)
	}
	if d := diff(v2, v1); d != "" {
		t.Errorf("v_out: %s", d)
	}
	if !sameBits(ka1, ka2) || !sameBits(va1, va2) || ka1[0] == 0 {
		t.Errorf("amax: Go slices %v %v, C memory %v %v", ka1, va1, ka2, va2)
	}
}

// -------------------------------------------------------------------------------------------
// Amax

func TestAmaxPerTensorTwoCalls(t *testing.T) {
	const s, h, dn, dr, dv = 6, 4, 16, 8, 16
	const w = dn + dv
	r := rand.New(rand.NewSource(7))
	for _, dt := range []Dtype{BF16, FP16, FP32} {
		ka, va := []float32{0}, []float32{0}
		var wantK, wantV float32
		for call := 0; call < 2; call++ {
			kf, vf := []float32{4, 4, 4, 4}, []float32{1, 1, 1, 1}
			if call == 1 {
				kf, vf = []float32{1, 1, 1, 1}, []float32{2, 2, 2, 2}
			}
			kvVals, peVals := headValues(r, dt, s, h, dn, dr, dv, kf, vf)
			if call == 1 { // the maximum of K in k_pe, an infinity in v
				peVals[5] = -1000
				kvVals[(2*h+1)*w+dn+3] = float32(math.Inf(-1))
			}
			view, at := exactIn(t, dt, kvVals)
			peView, peAt := exactIn(t, dt, peVals)
			a := NewArgs()
			a.KNope = view(0, []int64{s, h, dn}, []int64{h * w, w, 1})
			a.V = view(dn, []int64{s, h, dv}, []int64{h * w, w, 1})
			a.KPe = peView(0, []int64{s, dr}, []int64{dr, 1})
			kOut := poisoned(s * h * (dn + dr))
			a.KOut, a.VOut = FP8Tensor(kOut, E4M3FN, s, h, dn+dr), FP8Tensor(poisoned(s*h*dv), E4M3FN, s, h, dv)
			a.KScaleInv, a.VScaleInv = 2, 0.5
			a.KAmax, a.VAmax = ka, va
			if plan, err := Plan(a); err != nil || !strings.Contains(plan, "scales=per-tensor amax=k,v") {
				t.Fatalf("plan %q, %v", plan, err)
			}
			if err := PackFP8(a); err != nil {
				t.Fatal(err)
			}
			var ks, vs []float32
			for tk := 0; tk < s; tk++ {
				for j := 0; j < h; j++ {
					for d := 0; d < w; d++ {
						if d < dn {
							ks = append(ks, at((tk*h+j)*w+d))
						} else {
							vs = append(vs, at((tk*h+j)*w+d))
						}
					}
				}
			}
			for i := 0; i < s*dr; i++ {
				ks = append(ks, peAt(i))
			}
			wantK, wantV = accumulate(wantK, amaxLoop(ks...)), accumulate(wantV, amaxLoop(vs...))
			if !sameBits(ka, []float32{wantK}) || !sameBits(va, []float32{wantV}) {
				t.Fatalf("%v call %d: amax %v %v, want %v %v", dt, call, ka, va, wantK, wantV)
			}
			if got, want := kOut[0], quantize(at(0), 2, E4M3FN); got != want { // outputs as without amax
				t.Fatalf("k_out[0] = 0x%02X, want 0x%02X", got, want)
			}
		}
		if ka[0] != 1000 || !math.IsInf(float64(va[0]), 1) {
			t.Errorf("%v: final amax %v %v, want 1000 +Inf", dt, ka, va)
		}
	}
}

func TestAmaxPerHeadTwoCalls(t *testing.T) {
	const s, h, dn, dr, dv = 5, 5, 16, 8, 24
	const w = dn + dv
	r := rand.New(rand.NewSource(8))
	ks, vs := pow2Scales(h)
	f1 := []float32{8, 1, 1, 8, 1}
	f2 := []float32{1, 8, 8, 1, 1}
	for _, dt := range []Dtype{BF16, FP16, FP32} {
		ka, va := make([]float32, h), make([]float32, h)
		wantK, wantV := make([]float32, h), make([]float32, h)
		for call := 0; call < 2; call++ {
			kf, vf := f1, f2
			if call == 1 {
				kf, vf = f2, f1
			}
			kvVals, peVals := headValues(r, dt, s, h, dn, dr, dv, kf, vf)
			if call == 1 { // +inf in head 2 of k_nope, -inf in head 0 of v
				kvVals[(3*h+2)*w+5] = float32(math.Inf(1))
				kvVals[dn] = float32(math.Inf(-1))
			}
			view, at := exactIn(t, dt, kvVals)
			peView, peAt := exactIn(t, dt, peVals)
			a := NewArgs()
			a.KNope = view(0, []int64{s, h, dn}, []int64{h * w, w, 1})
			a.V = view(dn, []int64{s, h, dv}, []int64{h * w, w, 1})
			a.KPe = peView(0, []int64{s, dr}, []int64{dr, 1})
			a.KOut = FP8Tensor(poisoned(s*h*(dn+dr)), E4M3FN, s, h, dn+dr)
			a.VOut = FP8Tensor(poisoned(s*h*dv), E4M3FN, s, h, dv)
			a.KScaleInvPerHead, a.VScaleInvPerHead = ks, vs
			a.KAmax, a.VAmax = ka, va
			if err := PackFP8(a); err != nil {
				t.Fatal(err)
			}
			var pes []float32
			for i := 0; i < s*dr; i++ {
				pes = append(pes, peAt(i))
			}
			for j := 0; j < h; j++ {
				kj, vj := append([]float32(nil), pes...), []float32(nil)
				for tk := 0; tk < s; tk++ {
					for d := 0; d < dn; d++ {
						kj = append(kj, at((tk*h+j)*w+d))
					}
					for d := 0; d < dv; d++ {
						vj = append(vj, at((tk*h+j)*w+dn+d))
					}
				}
				wantK[j] = accumulate(wantK[j], amaxLoop(kj...))
				wantV[j] = accumulate(wantV[j], amaxLoop(vj...))
			}
			if !sameBits(ka, wantK) || !sameBits(va, wantV) {
				t.Fatalf("%v call %d: k_amax %v want %v; v_amax %v want %v", dt, call, ka, wantK, va, wantV)
			}
		}
		if !math.IsInf(float64(ka[2]), 1) || !math.IsInf(float64(va[0]), 1) ||
			!(ka[0] > 4*ka[4] && ka[3] > 4*ka[4] && ka[1] > 4*ka[4]) {
			t.Errorf("%v: k_amax %v, v_amax %v", dt, ka, va)
		}
	}
}

func TestAmaxBitPatternRuleAndEmptyCalls(t *testing.T) {
	const s, h = 3, 2
	nanK := make([]float32, s*h*16)
	nanPe := make([]float32, s*8)
	for i := range nanK {
		nanK[i] = float32(math.NaN())
	}
	for i := range nanPe {
		nanPe[i] = float32(math.NaN())
	}
	v := make([]float32, s*h*16)
	for i := range v {
		v[i] = -2.5
	}
	v[0] = float32(math.NaN())
	call := func(s int64, ka, va []float32) error {
		a := NewArgs()
		a.KNope = FP32Tensor(nanK, s, h, 16)
		a.KPe = FP32Tensor(nanPe, s, 8)
		a.V = FP32Tensor(v, s, h, 16)
		a.KOut = FP8Tensor(poisoned(int(s)*h*24), E4M3FN, s, h, 24)
		a.VOut = FP8Tensor(poisoned(int(s)*h*16), E4M3FN, s, h, 16)
		a.KAmax, a.VAmax = ka, va
		return PackFP8(a)
	}
	ka := []float32{-1}                  // negative: any m >= +0 replaces it
	va := []float32{float32(math.NaN())} // 0x7FC00000 is above every |x| pattern: it stays
	if err := call(s, ka, va); err != nil {
		t.Fatal(err)
	}
	if math.Float32bits(ka[0]) != 0 || va[0] == va[0] {
		t.Errorf("all-NaN k: amax %v (bits %08x), want +0; old NaN v_amax: %v", ka[0], math.Float32bits(ka[0]), va[0])
	}
	va[0] = 3
	if err := call(s, ka, va); err != nil || va[0] != 3 {
		t.Errorf("old larger value: %v %v", va, err)
	}
	va[0] = 1
	if err := call(s, ka, va); err != nil || va[0] != 2.5 {
		t.Errorf("|-2.5|: %v %v", va, err)
	}
	// s = 0: nothing read or written
	ka[0] = -7
	if err := call(0, ka, nil); err != nil || ka[0] != -7 {
		t.Errorf("empty call: %v %v", ka, err)
	}
}

// -------------------------------------------------------------------------------------------
// Errors

// scaleErrSetup: a valid fp32 [4, 3, 16/8/16] call with poisoned outputs.
func scaleErrSetup() (*Args, []float32, []byte, []byte) {
	const s, h = 4, 3
	kv := make([]float32, s*h*32)
	for i := range kv {
		kv[i] = float32(i)*0.5 - 7
	}
	pe := make([]float32, s*8)
	a := NewArgs()
	a.KNope = FP32Tensor(kv, s, h, 16).WithStrides(h*32, 32, 1)
	a.V = FP32Tensor(kv[16:], s, h, 16).WithStrides(h*32, 32, 1)
	a.KPe = FP32Tensor(pe, s, 8)
	kOut, vOut := poisoned(s*h*24), poisoned(s*h*16)
	a.KOut, a.VOut = FP8Tensor(kOut, E4M3FN, s, h, 24), FP8Tensor(vOut, E4M3FN, s, h, 16)
	return a, kv, kOut, vOut
}

func expectStatus(t *testing.T, what string, err error, want Status, msgPart string) {
	t.Helper()
	var e *Error
	if !errors.Is(err, want) || !errors.As(err, &e) || !strings.Contains(e.Message, msgPart) {
		t.Errorf("%s: got %v, want %v mentioning %q", what, err, want, msgPart)
	}
}

func TestPerHeadWithoutScalePointersIsNullPointer(t *testing.T) {
	ks, _ := pow2Scales(3)
	a, _, kOut, vOut := scaleErrSetup()
	ka := []float32{-5, -5, -5}
	a.ScaleGranularity = ScalePerHead // no per-head multipliers at all
	a.KAmax = ka
	expectStatus(t, "per head, no multipliers", PackFP8(a), ErrNullPointer, "per-head")
	a.KScaleInvPerHead = ks // K only
	expectStatus(t, "per head, K only", PackFP8(a), ErrNullPointer, "v_scale_inv")
	if _, err := Plan(a); !errors.Is(err, ErrNullPointer) {
		t.Errorf("Plan: %v", err)
	}
	if !allPoison(kOut) || !allPoison(vOut) || !sameBits(ka, []float32{-5, -5, -5}) {
		t.Error("a refused call wrote outputs or amax")
	}
}

func TestWrongGranularityIsInvalidArgument(t *testing.T) {
	ks, vs := pow2Scales(3)
	for _, g := range []ScaleGranularity{2, -1, 7, math.MaxInt32} {
		a, _, kOut, vOut := scaleErrSetup()
		a.ScaleGranularity = g
		expectStatus(t, fmt.Sprint("granularity ", g), PackFP8(a), ErrInvalidArgument, "scale_granularity")
		a.KScaleInvPerHead, a.VScaleInvPerHead = ks, vs // an unknown code stays unknown
		expectStatus(t, fmt.Sprint("granularity ", g, " with slices"), PackFP8(a), ErrInvalidArgument, "scale_granularity")
		if !allPoison(kOut) || !allPoison(vOut) {
			t.Error("a refused call wrote outputs")
		}
	}
}

func TestAmaxOverlappingAnOperandIsOverlap(t *testing.T) {
	ks, vs := pow2Scales(3)
	// Go memory: an amax slice that is part of an input slice
	a, kv, kOut, vOut := scaleErrSetup()
	before := append([]float32(nil), kv...)
	a.KAmax = kv[40:41] // an element of k_nope
	expectStatus(t, "k_amax in k_nope", PackFP8(a), ErrOverlap, "k_amax overlaps")
	a.KAmax, a.VAmax = nil, kv[16:17] // the first element of v
	expectStatus(t, "v_amax in v", PackFP8(a), ErrOverlap, "v_amax overlaps")
	a.KScaleInvPerHead, a.VScaleInvPerHead = ks, vs
	a.VAmax = ks // on the per-head K multipliers
	expectStatus(t, "v_amax on the K multipliers", PackFP8(a), ErrOverlap, "overlaps")
	one := []float32{0}
	a.KScaleInvPerHead, a.VScaleInvPerHead = nil, nil
	a.KAmax, a.VAmax = one, one
	expectStatus(t, "k_amax and v_amax on one float", PackFP8(a), ErrOverlap, "overlaps")
	if !allPoison(kOut) || !allPoison(vOut) || !sameBits(kv, before) || one[0] != 0 {
		t.Error("a refused call wrote something")
	}
	// C memory: an amax address inside k_out
	ck := capi.NewCBytes(4 * 3 * 24)
	defer ck.Free()
	copy(ck.Bytes(), poisoned(4*3*24))
	b, _, _, _ := scaleErrSetup()
	b.KOut = DeviceTensor(ck.Addr(), E4M3FN, 4, 3, 24)
	b.KAmaxPtr = ck.Addr() + 8
	b.Backend = BackendReference
	expectStatus(t, "k_amax in k_out", PackFP8(b), ErrOverlap, "overlaps")
	if !allPoison(ck.Bytes()) {
		t.Error("a refused call wrote k_out")
	}
}

func TestScaleAndAmaxSlicesAreCheckedInGo(t *testing.T) {
	ks, vs := pow2Scales(4)
	cases := []struct {
		name   string
		mutate func(a *Args)
		want   Status
		part   string
	}{
		{"K multipliers: 4 for h = 3", func(a *Args) { a.KScaleInvPerHead, a.VScaleInvPerHead = ks, vs[:3] }, ErrShape, "KScaleInvPerHead holds 4"},
		{"V multipliers: 2 for h = 3", func(a *Args) { a.KScaleInvPerHead, a.VScaleInvPerHead = ks[:3], vs[:2] }, ErrShape, "VScaleInvPerHead holds 2"},
		{"per-tensor amax of 3", func(a *Args) { a.KAmax = make([]float32, 3) }, ErrShape, "KAmax holds 3"},
		{"per-tensor amax of 0", func(a *Args) { a.VAmax = []float32{} }, ErrShape, "VAmax holds 0"},
		{"per-head amax of 1", func(a *Args) {
			a.KScaleInvPerHead, a.VScaleInvPerHead = ks[:3], vs[:3]
			a.VAmax = []float32{0}
		}, ErrShape, "VAmax holds 1"},
		{"slice and pointer", func(a *Args) { a.KScaleInvPerHead, a.KScaleInvPtr = ks[:3], 64 }, ErrInvalidArgument, "both set"},
		{"amax slice and pointer", func(a *Args) { a.VAmax, a.VAmaxPtr = []float32{0}, 64 }, ErrInvalidArgument, "both set"},
		{"h unknown", func(a *Args) {
			a.KNope = FP32Tensor(make([]float32, 12*16), 12, 16)
			a.KScaleInvPerHead, a.VScaleInvPerHead = ks[:3], vs[:3]
		}, ErrRank, "k_nope has 2 dimensions"},
	}
	for _, c := range cases {
		a, _, kOut, vOut := scaleErrSetup()
		c.mutate(a)
		expectStatus(t, c.name, PackFP8(a), c.want, c.part)
		if !allPoison(kOut) || !allPoison(vOut) {
			t.Errorf("%s: outputs written", c.name)
		}
	}
	// tensors in C memory but multipliers or amax in Go slices: Go memory, so not on a GPU backend
	cbuf := capi.NewCBytes(4 * 3 * 32 * 4 * 2)
	defer cbuf.Free()
	for i, mutate := range []func(a *Args){
		func(a *Args) { a.KScaleInvPerHead, a.VScaleInvPerHead = ks[:3], vs[:3] },
		func(a *Args) { a.VAmax = []float32{0} },
	} {
		a, _, _, _ := scaleErrSetup()
		base := cbuf.Addr()
		a.KNope = DeviceTensor(base, FP32, 4, 3, 16).WithStrides(3*32, 32, 1)
		a.V = DeviceTensor(base+64, FP32, 4, 3, 16).WithStrides(3*32, 32, 1)
		a.KPe = DeviceTensor(base+4*4*3*32, FP32, 4, 8)
		a.KOut = DeviceTensor(base+4*4*3*32+4*4*8, E4M3FN, 4, 3, 24)
		a.VOut = DeviceTensor(base+4*4*3*32+4*4*8+4*3*24, E4M3FN, 4, 3, 16)
		a.Backend = BackendCUDA
		mutate(a)
		expectStatus(t, fmt.Sprint("Go slices on the CUDA backend ", i), PackFP8(a), ErrMemorySpace, "Go slice")
	}
	// per-head scales make a zero KScaleInv irrelevant (the zero-value check is per tensor only)
	a, _, _, _ := scaleErrSetup()
	a.KScaleInv, a.VScaleInv = 0, 0
	a.KScaleInvPerHead, a.VScaleInvPerHead = ks[:3], vs[:3]
	if err := PackFP8(a); err != nil {
		t.Errorf("per-head with zero host multipliers: %v", err)
	}
}
