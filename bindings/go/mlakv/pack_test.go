package mlakv

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/mlakv/mlakv/bindings/go/internal/capi"
)

const poison = 0xAA

func poisoned(n int) []byte { return bytes.Repeat([]byte{poison}, n) }

func allPoison(b []byte) bool {
	for _, x := range b {
		if x != poison {
			return false
		}
	}
	return true
}

// diff describes the first differing bytes of two equal-length buffers.
func diff(got, want []byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("length %d, want %d", len(got), len(want))
	}
	var sb strings.Builder
	n := 0
	for i := range got {
		if got[i] != want[i] {
			if n < 8 {
				fmt.Fprintf(&sb, " [%d]=0x%02X want 0x%02X", i, got[i], want[i])
			}
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d bytes differ:%s", n, sb.String())
}

func asBytes16(b []uint16) []byte {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&b[0])), 2*len(b))
}

func asBytes32(b []float32) []byte {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&b[0])), 4*len(b))
}

// -------------------------------------------------------------------------------------------
// Library information

func TestVersion(t *testing.T) {
	v := Version()
	if v != HeaderVersion {
		t.Errorf("Version() = %d, header MLAKV_VERSION = %d", v, HeaderVersion)
	}
	if HeaderVersion != 200 || !strings.HasPrefix(VersionString(), "0.2.0 ") {
		t.Errorf("HeaderVersion = %d, VersionString() = %q: this binding is written for mlakv 0.2.0", HeaderVersion, VersionString())
	}
	want := fmt.Sprintf("%d.%d.%d", v/10000, v/100%100, v%100)
	if s := VersionString(); !strings.HasPrefix(s, want+" (") || !strings.Contains(s, "reference") {
		t.Errorf("VersionString() = %q, want %q followed by the built backends", s, want)
	}
}

func TestBackends(t *testing.T) {
	bs, err := Backends()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[Backend]BackendInfo{}
	for _, b := range bs {
		seen[b.Backend] = b
		if b.Name != b.Backend.String() {
			t.Errorf("backend %d is named %q, want %q", b.Backend, b.Name, b.Backend.String())
		}
		if b.Usable && !b.Compiled {
			t.Errorf("backend %s usable but not compiled", b.Name)
		}
	}
	ref, ok := seen[BackendReference]
	if !ok || !ref.Compiled || !ref.Usable || ref.DeviceCount != 1 || ref.Detail == "" {
		t.Errorf("reference backend: %+v (present %v), want compiled, usable, 1 device, a detail", ref, ok)
	}
	for _, b := range []Backend{BackendCUDA, BackendHIP} {
		if _, ok := seen[b]; !ok {
			t.Errorf("backend %s missing from Backends()", b)
		}
	}
}

func TestNames(t *testing.T) {
	for d, want := range map[Dtype]string{BF16: "bf16", FP16: "fp16", FP32: "fp32", E4M3FN: "e4m3fn",
		E5M2: "e5m2", E4M3FNUZ: "e4m3fnuz", E5M2FNUZ: "e5m2fnuz", DtypeInvalid: "invalid", Dtype(42): "Dtype(42)"} {
		if d.String() != want {
			t.Errorf("Dtype(%d).String() = %q, want %q", int32(d), d.String(), want)
		}
	}
	sizes := map[Dtype]int{BF16: 2, FP16: 2, FP32: 4, E4M3FN: 1, E5M2: 1, E4M3FNUZ: 1, E5M2FNUZ: 1, DtypeInvalid: 0}
	for d, want := range sizes {
		if d.Size() != want {
			t.Errorf("%v.Size() = %d, want %d", d, d.Size(), want)
		}
	}
	if ErrShape.String() != "MLAKV_ERR_SHAPE" || ErrNoTableRow.String() != "MLAKV_ERR_NO_TABLE_ROW" ||
		ErrTableDevice.String() != "MLAKV_ERR_TABLE_DEVICE" || ErrTableDevice != 21 ||
		OK.String() != "MLAKV_OK" || Status(99).String() != "MLAKV_STATUS(99)" || Status(23).String() != "MLAKV_STATUS(23)" ||
		ErrOverlapUndecided != 22 || ErrOverlapUndecided.String() != "MLAKV_ERR_OVERLAP_UNDECIDED" {
		t.Errorf("status names: %v %v %v %v %v", ErrShape, ErrNoTableRow, ErrTableDevice, OK, Status(99))
	}
	var e *Error
	if err := error(&Error{Op: "LoadDispatchTable", Status: Status(21)}); !errors.Is(err, ErrTableDevice) ||
		!errors.As(err, &e) || !strings.HasPrefix(err.Error(), "mlakv.LoadDispatchTable: MLAKV_ERR_TABLE_DEVICE: ") {
		t.Errorf("status 21: %v", err)
	}
	if err := error(&Error{Op: "PackFP8", Status: Status(22)}); !errors.Is(err, ErrOverlapUndecided) ||
		errors.Is(err, ErrOverlap) || !strings.HasPrefix(err.Error(), "mlakv.PackFP8: MLAKV_ERR_OVERLAP_UNDECIDED: ") {
		t.Errorf("status 22: %v", err)
	}
	for g, want := range map[ScaleGranularity]string{ScalePerTensor: "per-tensor", ScalePerHead: "per-head", 7: "ScaleGranularity(7)"} {
		if g.String() != want {
			t.Errorf("ScaleGranularity(%d).String() = %q, want %q", int32(g), g.String(), want)
		}
	}
	for s := Status(0); s <= ErrOverlapUndecided; s++ {
		if !strings.HasPrefix(s.Error(), s.String()+": ") || len(s.Error()) < len(s.String())+5 {
			t.Errorf("Status(%d).Error() = %q", int32(s), s.Error())
		}
	}
}

func TestErrorWrapping(t *testing.T) {
	var err error = &Error{Op: "PackFP8", Status: ErrOverlap, Message: "k_out overlaps v_out in memory"}
	wrapped := fmt.Errorf("layer 3: %w", err)
	if !errors.Is(wrapped, ErrOverlap) || errors.Is(wrapped, ErrShape) {
		t.Errorf("errors.Is on a wrapped *Error does not follow its status")
	}
	var e *Error
	if !errors.As(wrapped, &e) || e.Status != ErrOverlap || e.Message != "k_out overlaps v_out in memory" {
		t.Errorf("errors.As: %#v", e)
	}
	var st Status
	if !errors.As(wrapped, &st) || st != ErrOverlap {
		t.Errorf("errors.As(Status) = %v", st)
	}
	if got, want := err.Error(), "mlakv.PackFP8: MLAKV_ERR_OVERLAP: k_out overlaps v_out in memory"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := (&Error{Status: ErrShape}).Error(), "mlakv: MLAKV_ERR_SHAPE: shapes disagree"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// -------------------------------------------------------------------------------------------
// Dispatch tables and plans

// forceStrided makes the reference backend use its element-wise "strided" variant for every
// call, until the test ends.
func forceStrided(t *testing.T) {
	t.Helper()
	if err := SetDispatchTable(BackendReference, "arch=0-0 s=1-* sxh=1-* dims=any variant=strided"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ResetDispatchTable(BackendReference); err != nil {
			t.Error(err)
		}
	})
}

func TestDispatchTable(t *testing.T) {
	builtin, err := DispatchTable(BackendReference)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(builtin, "variant=vector") || !strings.Contains(builtin, "variant=strided") {
		t.Fatalf("reference table lacks its two variants:\n%s", builtin)
	}
	a := smallArgs(t, 2, 3, 8, 8, 8)
	plan, err := Plan(a)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(plan, "backend=reference ") || !strings.Contains(plan, "variant=vector") ||
		!strings.Contains(plan, "s=2 h=3 dims=8,8,8 bf16->e4m3fn") {
		t.Errorf("plan: %q", plan)
	}

	t.Run("set", func(t *testing.T) {
		forceStrided(t)
		got, err := DispatchTable(BackendReference)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(got, "variant=vector") || !strings.Contains(got, "variant=strided") {
			t.Errorf("table after SetDispatchTable:\n%s", got)
		}
		if plan, err := Plan(a); err != nil || !strings.Contains(plan, "variant=strided") {
			t.Errorf("plan after SetDispatchTable: %q, %v", plan, err)
		}
	})
	if got, _ := DispatchTable(BackendReference); got != builtin {
		t.Errorf("ResetDispatchTable did not restore the built-in table:\n%s", got)
	}

	err = SetDispatchTable(BackendReference, "arch=0-0 s=1-* nonsense")
	var e *Error
	if !errors.As(err, &e) || e.Status != ErrTableParse || !strings.Contains(e.Message, "line 1") || e.Op != "SetDispatchTable" {
		t.Errorf("bad table: %v", err)
	}
	if got, _ := DispatchTable(BackendReference); got != builtin {
		t.Errorf("a failed SetDispatchTable changed the table:\n%s", got)
	}

	if _, err := DispatchTable(Backend(9)); !errors.Is(err, ErrNoSuchBackend) {
		t.Errorf("DispatchTable(9): %v", err)
	}
	bs, _ := Backends()
	for _, b := range bs {
		if b.Backend == BackendCUDA && !b.Compiled {
			_, err := DispatchTable(BackendCUDA)
			if !errors.As(err, &e) || e.Status != ErrBackendUnavailable || e.Message == "" {
				t.Errorf("DispatchTable(cuda) in a build without CUDA: %v", err)
			}
		}
	}
}

func TestLoadDispatchTable(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-table.txt")
	var e *Error

	// the reference backend has no per-device tables (GPU backends do)
	err := LoadDispatchTable(BackendReference, missing)
	if !errors.As(err, &e) || e.Status != ErrInvalidArgument || e.Op != "LoadDispatchTable" ||
		!strings.Contains(e.Message, "per-device tables") {
		t.Errorf("LoadDispatchTable(reference): %v", err)
	}
	if !errors.Is(err, ErrInvalidArgument) || int32(e.Status) != 11 {
		t.Errorf("LoadDispatchTable(reference): status %v", err)
	}

	// an unknown backend code, and BackendAuto (no table of its own)
	if err := LoadDispatchTable(Backend(7), missing); !errors.As(err, &e) || e.Status != ErrNoSuchBackend || int32(e.Status) != 12 {
		t.Errorf("LoadDispatchTable(7): %v", err)
	}
	if err := LoadDispatchTable(BackendAuto, missing); !errors.Is(err, ErrNoSuchBackend) {
		t.Errorf("LoadDispatchTable(auto): %v", err)
	}

	// a NUL inside the path is caught in Go
	if err := LoadDispatchTable(BackendReference, "a\x00b"); !errors.As(err, &e) || e.Status != ErrInvalidArgument ||
		!strings.Contains(e.Message, "NUL") {
		t.Errorf("LoadDispatchTable with a NUL byte: %v", err)
	}

	// GPU backends not compiled into this library are unavailable
	bs, err := Backends()
	if err != nil {
		t.Fatal(err)
	}
	sawCUDA := false
	for _, b := range bs {
		if b.Backend == BackendReference || b.Compiled {
			if b.Backend == BackendCUDA {
				sawCUDA = true
				t.Logf("SKIPPED: the cuda backend is compiled into this library")
			}
			continue
		}
		err := LoadDispatchTable(b.Backend, missing)
		if !errors.As(err, &e) || e.Status != ErrBackendUnavailable || !strings.Contains(e.Message, b.Name) {
			t.Errorf("LoadDispatchTable(%s) in a build without it: %v", b.Name, err)
		}
		if b.Backend == BackendCUDA {
			sawCUDA = true
			if int32(e.Status) != 13 || e.Status.String() != "MLAKV_ERR_BACKEND_UNAVAILABLE" {
				t.Errorf("LoadDispatchTable(cuda): %v", err)
			}
		}
	}
	if !sawCUDA {
		t.Errorf("Backends() does not list cuda: %+v", bs)
	}
}

// -------------------------------------------------------------------------------------------
// Fixed vectors with hand-derived results

// smallArgs: contiguous bf16 inputs filled with 1.0, e4m3fn outputs poisoned.
func smallArgs(t *testing.T, s, h, dn, dr, dv int) *Args {
	t.Helper()
	in := func(n int) []uint16 {
		b := make([]uint16, n)
		for i := range b {
			b[i] = 0x3F80
		}
		return b
	}
	a := NewArgs()
	S, H := int64(s), int64(h)
	a.KNope = BF16Tensor(in(s*h*dn), S, H, int64(dn))
	a.KPe = BF16Tensor(in(s*dr), S, int64(dr))
	a.V = BF16Tensor(in(s*h*dv), S, H, int64(dv))
	a.KOut = FP8Tensor(poisoned(s*h*(dn+dr)), E4M3FN, S, H, int64(dn+dr))
	a.VOut = FP8Tensor(poisoned(s*h*dv), E4M3FN, S, H, int64(dv))
	return a
}

type fixedCase struct {
	x    float32
	want map[Dtype]byte // e4m3fn, e5m2, e4m3fnuz, e5m2fnuz
}

var negZero = float32(math.Copysign(0, -1))

// Multiplier 1. Each value is exact in bf16, fp16 and fp32. The expected bytes were derived by
// hand from the format definitions and cross-checked with ml_dtypes (in range) and the brief's
// H100 measurements (e4m3fn/e5m2 saturation, NaN, ties).
var fixedCases = []fixedCase{
	{1, map[Dtype]byte{E4M3FN: 0x38, E5M2: 0x3C, E4M3FNUZ: 0x40, E5M2FNUZ: 0x40}},
	{-1, map[Dtype]byte{E4M3FN: 0xB8, E5M2: 0xBC, E4M3FNUZ: 0xC0, E5M2FNUZ: 0xC0}},
	{0.5, map[Dtype]byte{E4M3FN: 0x30, E5M2: 0x38, E4M3FNUZ: 0x38, E5M2FNUZ: 0x3C}},
	{0, map[Dtype]byte{E4M3FN: 0x00, E5M2: 0x00, E4M3FNUZ: 0x00, E5M2FNUZ: 0x00}},
	{negZero, map[Dtype]byte{E4M3FN: 0x80, E5M2: 0x80, E4M3FNUZ: 0x00, E5M2FNUZ: 0x00}},
	// saturation: above max, halfway past max, infinities
	{1000, map[Dtype]byte{E4M3FN: 0x7E, E5M2: 0x64, E4M3FNUZ: 0x7F, E5M2FNUZ: 0x68}},
	{-1000, map[Dtype]byte{E4M3FN: 0xFE, E5M2: 0xE4, E4M3FNUZ: 0xFF, E5M2FNUZ: 0xE8}},
	{448, map[Dtype]byte{E4M3FN: 0x7E, E5M2: 0x5F, E4M3FNUZ: 0x7F, E5M2FNUZ: 0x63}},
	{480, map[Dtype]byte{E4M3FN: 0x7E, E5M2: 0x60, E4M3FNUZ: 0x7F, E5M2FNUZ: 0x64}},
	{248, map[Dtype]byte{E4M3FN: 0x78, E5M2: 0x5C, E4M3FNUZ: 0x7F, E5M2FNUZ: 0x60}},
	{57344, map[Dtype]byte{E4M3FN: 0x7E, E5M2: 0x7B, E4M3FNUZ: 0x7F, E5M2FNUZ: 0x7F}},
	{61440, map[Dtype]byte{E4M3FN: 0x7E, E5M2: 0x7B, E4M3FNUZ: 0x7F, E5M2FNUZ: 0x7F}},
	{float32(math.Inf(1)), map[Dtype]byte{E4M3FN: 0x7E, E5M2: 0x7B, E4M3FNUZ: 0x7F, E5M2FNUZ: 0x7F}},
	{float32(math.Inf(-1)), map[Dtype]byte{E4M3FN: 0xFE, E5M2: 0xFB, E4M3FNUZ: 0xFF, E5M2FNUZ: 0xFF}},
	{float32(math.NaN()), map[Dtype]byte{E4M3FN: 0x7F, E5M2: 0x7F, E4M3FNUZ: 0x80, E5M2FNUZ: 0x80}},
	// round to nearest even in the normal range: 1 + 1/16 is a tie (-> 1.0), 1 + 3/16 a tie (-> 1.25)
	{1.0625, map[Dtype]byte{E4M3FN: 0x38, E5M2: 0x3C, E4M3FNUZ: 0x40, E5M2FNUZ: 0x40}},
	{1.1875, map[Dtype]byte{E4M3FN: 0x3A, E5M2: 0x3D, E4M3FNUZ: 0x42, E5M2FNUZ: 0x41}},
	// subnormals (smallest: e4m3fn 2^-9, e5m2 2^-16, e4m3fnuz 2^-10, e5m2fnuz 2^-17) and ties at
	// half the smallest (-> 0; -0 where the format has it)
	{0x1p-9, map[Dtype]byte{E4M3FN: 0x01, E5M2: 0x18, E4M3FNUZ: 0x02, E5M2FNUZ: 0x1C}},
	{0x1p-10, map[Dtype]byte{E4M3FN: 0x00, E5M2: 0x14, E4M3FNUZ: 0x01, E5M2FNUZ: 0x18}},
	{0x1.8p-10, map[Dtype]byte{E4M3FN: 0x01, E5M2: 0x16, E4M3FNUZ: 0x02, E5M2FNUZ: 0x1A}},
	{3 * 0x1p-10, map[Dtype]byte{E4M3FN: 0x02, E5M2: 0x1A, E4M3FNUZ: 0x03, E5M2FNUZ: 0x1E}},
	{0x1p-16, map[Dtype]byte{E4M3FN: 0x00, E5M2: 0x01, E4M3FNUZ: 0x00, E5M2FNUZ: 0x02}},
	{0x1p-17, map[Dtype]byte{E4M3FN: 0x00, E5M2: 0x00, E4M3FNUZ: 0x00, E5M2FNUZ: 0x01}},
	{-0x1p-11, map[Dtype]byte{E4M3FN: 0x80, E5M2: 0x90, E4M3FNUZ: 0x00, E5M2FNUZ: 0x94}},
	{-0x1p-20, map[Dtype]byte{E4M3FN: 0x80, E5M2: 0x80, E4M3FNUZ: 0x00, E5M2FNUZ: 0x00}},
}

var fp8Formats = []Dtype{E4M3FN, E5M2, E4M3FNUZ, E5M2FNUZ}

// inputTensor stores vals in the given dtype and returns the tensor of shape dims.
func inputTensor(t *testing.T, dt Dtype, vals []float32, dims ...int64) Tensor {
	switch dt {
	case BF16:
		b := make([]uint16, len(vals))
		for i, v := range vals {
			b[i] = bf16Exact(t, v)
		}
		return BF16Tensor(b, dims...)
	case FP16:
		b := make([]uint16, len(vals))
		for i, v := range vals {
			b[i] = fp16Exact(t, v)
		}
		return FP16Tensor(b, dims...)
	case FP32:
		return FP32Tensor(append([]float32(nil), vals...), dims...)
	}
	t.Fatalf("no input dtype %v", dt)
	return Tensor{}
}

// packVector runs one token, one head: k_nope = v = k_pe = vals.
func packVector(t *testing.T, dt, f Dtype, vals []float32, mk, mv float32) (kOut, vOut []byte) {
	t.Helper()
	return packVectorOn(t, dt, f, vals, mk, mv, "")
}

// packVectorOn is packVector that also checks which kernel variant the plan names.
func packVectorOn(t *testing.T, dt, f Dtype, vals []float32, mk, mv float32, variant string) (kOut, vOut []byte) {
	t.Helper()
	n := int64(len(vals))
	a := NewArgs()
	a.KNope = inputTensor(t, dt, vals, 1, 1, n)
	a.KPe = inputTensor(t, dt, vals, 1, n)
	a.V = inputTensor(t, dt, vals, 1, 1, n)
	kOut, vOut = poisoned(int(2*n)), poisoned(int(n))
	a.KOut = FP8Tensor(kOut, f, 1, 1, 2*n)
	a.VOut = FP8Tensor(vOut, f, 1, 1, n)
	a.KScaleInv, a.VScaleInv = mk, mv
	if variant != "" {
		if plan, err := Plan(a); err != nil || !strings.Contains(plan, "variant="+variant+" ") {
			t.Fatalf("plan %q (%v), want variant %s", plan, err, variant)
		}
	}
	if err := PackFP8(a); err != nil {
		t.Fatalf("%v -> %v: %v", dt, f, err)
	}
	return kOut, vOut
}

func TestFixedVectors(t *testing.T) {
	// padded to a multiple of 8 values (by repeating the table) so that the vectorised "vector"
	// variant, which needs dims that are multiples of 8, runs them too
	cases := fixedCases
	for len(cases)%8 != 0 {
		cases = append(cases[:len(cases):len(cases)], fixedCases[len(cases)%len(fixedCases)])
	}
	vals := make([]float32, len(cases))
	for i, c := range cases {
		vals[i] = c.x
	}
	for _, variant := range []string{"vector", "strided"} {
		t.Run(variant, func(t *testing.T) {
			if variant == "strided" {
				forceStrided(t)
			}
			for _, dt := range []Dtype{BF16, FP16, FP32} {
				for _, f := range fp8Formats {
					kOut, vOut := packVectorOn(t, dt, f, vals, 1, 1, variant)
					want := make([]byte, len(vals))
					for i, c := range cases {
						want[i] = c.want[f]
						if o := encodeFP8(c.x, f); o != c.want[f] {
							t.Errorf("oracle disagrees with the table: %v %v -> 0x%02X, table 0x%02X", c.x, f, o, c.want[f])
						}
					}
					wantK := append(append([]byte(nil), want...), want...)
					if d := diff(kOut, wantK); d != "" {
						t.Errorf("%v -> %v k_out: %s", dt, f, d)
					}
					if d := diff(vOut, want); d != "" {
						t.Errorf("%v -> %v v_out: %s", dt, f, d)
					}
				}
			}
		})
	}
}

func TestScaleMultiply(t *testing.T) {
	// K multiplied by 2, V by 0.25: 1 -> 2 (e4m3fn 0x40) and 0.25 (0x28); -3 -> -6 (0xCC) and -0.75 (0xB4)
	kOut, vOut := packVector(t, BF16, E4M3FN, []float32{1, -3}, 2, 0.25)
	if d := diff(kOut, []byte{0x40, 0xCC, 0x40, 0xCC}); d != "" {
		t.Errorf("k_out: %s", d)
	}
	if d := diff(vOut, []byte{0x28, 0xB4}); d != "" {
		t.Errorf("v_out: %s", d)
	}

	// The product is rounded to fp32 before the fp8 rounding: x = fl32(1.4375/3) lies just below
	// 1.4375/3, so x*3 is just below the e4m3fn tie 1.4375 (between 1.375 = 0x3B and 1.5 = 0x3C),
	// but fl32(x*3) is exactly 1.4375, which rounds to even: 0x3C. A single rounding of the
	// exact product would give 0x3B.
	x := float32(1.4375 / 3)
	if float64(x)*3 >= 1.4375 || x*3 != 1.4375 {
		t.Fatalf("test premise: x*3 = %v (exact %v)", x*3, float64(x)*3)
	}
	want := map[Dtype]byte{E4M3FN: 0x3C, E5M2: 0x3E, E4M3FNUZ: 0x44, E5M2FNUZ: 0x42}
	for _, f := range fp8Formats {
		kOut, vOut := packVector(t, FP32, f, []float32{x}, 3, 3)
		if d := diff(append(kOut, vOut...), []byte{want[f], want[f], want[f]}); d != "" {
			t.Errorf("%v: %s", f, d)
		}
	}
}

func TestScaleFromMemory(t *testing.T) {
	// multipliers read from memory not managed by Go (the reference backend reads host memory)
	mk, mv := capi.NewCFloat32(2), capi.NewCFloat32(0.25)
	defer mk.Free()
	defer mv.Free()
	for _, f := range fp8Formats {
		vals := []float32{1, -3, 0.5, 1000}
		wantK, wantV := packVector(t, BF16, f, vals, 2, 0.25)
		a := NewArgs()
		a.KNope = inputTensor(t, BF16, vals, 1, 1, 4)
		a.KPe = inputTensor(t, BF16, vals, 1, 1, 4)
		a.V = inputTensor(t, BF16, vals, 1, 1, 4)
		kOut, vOut := poisoned(8), poisoned(4)
		a.KOut, a.VOut = FP8Tensor(kOut, f, 1, 1, 8), FP8Tensor(vOut, f, 1, 1, 4)
		a.KScaleInv, a.VScaleInv = 0, 0 // ignored: the pointers win
		a.KScaleInvPtr, a.VScaleInvPtr = mk.Addr(), mv.Addr()
		if err := PackFP8(a); err != nil {
			t.Fatal(err)
		}
		if d := diff(kOut, wantK); d != "" {
			t.Errorf("%v k_out: %s", f, d)
		}
		if d := diff(vOut, wantV); d != "" {
			t.Errorf("%v v_out: %s", f, d)
		}
	}
}

// -------------------------------------------------------------------------------------------
// Random inputs, compared with the C library called directly (internal/capi) and the Go model

type randCase struct {
	s, h, dn, dr, dv int
	dt, f            Dtype
	pe3              bool // k_pe as [s, 1, D_rope]
	padK, padV       int  // extra bytes per output row (strided outputs)
	mk, mv           float32
}

// randomBits gives input element bits: mostly finite values of moderate magnitude, with some
// arbitrary bit patterns (NaN, infinities, subnormals, huge values).
func randomBits(r *rand.Rand, dt Dtype, n int) []byte {
	b := make([]byte, n*dt.Size())
	for i := 0; i < n; i++ {
		wild := r.Intn(16) == 0
		f := float32(r.NormFloat64() * math.Exp2(float64(r.Intn(24)-12)))
		switch dt {
		case BF16:
			u := uint16(math.Float32bits(f) >> 16)
			if wild {
				u = uint16(r.Uint32())
			}
			b[2*i], b[2*i+1] = byte(u), byte(u>>8)
		case FP16:
			u := uint16(r.Uint32())
			if !wild {
				u = u&0x83FF | uint16(r.Intn(31))<<10 // any finite
			}
			b[2*i], b[2*i+1] = byte(u), byte(u>>8)
		case FP32:
			u := math.Float32bits(f)
			if wild {
				u = r.Uint32()
			}
			b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
		}
	}
	return b
}

func elemAt(dt Dtype, b []byte) func(i int) float32 {
	return func(i int) float32 {
		switch dt {
		case BF16:
			return bf16ToF32(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
		case FP16:
			return fp16ToF32(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
		}
		return math.Float32frombits(uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
	}
}

// typedBuf copies raw into a Go slice of the dtype's own element type and returns a maker of
// views into that one slice, starting at element off.
func typedBuf(dt Dtype, raw []byte) func(off int, shape, strides []int64) Tensor {
	var u16 []uint16
	var f32 []float32
	switch dt {
	case BF16, FP16:
		u16 = make([]uint16, len(raw)/2)
		copy(asBytes16(u16), raw)
	case FP32:
		f32 = make([]float32, len(raw)/4)
		copy(asBytes32(f32), raw)
	}
	return func(off int, shape, strides []int64) Tensor {
		var t Tensor
		switch dt {
		case BF16:
			t = BF16Tensor(u16[off:], shape...)
		case FP16:
			t = FP16Tensor(u16[off:], shape...)
		case FP32:
			t = FP32Tensor(f32[off:], shape...)
		}
		return t.WithStrides(strides...)
	}
}

// typedInput is a view into a fresh typed copy of raw.
func typedInput(dt Dtype, raw []byte, off int, shape, strides []int64) Tensor {
	return typedBuf(dt, raw)(off, shape, strides)
}

// runRandom checks one case three ways; it returns the binding's outputs.
func runRandom(t *testing.T, r *rand.Rand, c randCase) {
	t.Helper()
	s, h, dn, dr, dv := c.s, c.h, c.dn, c.dr, c.dv
	w := dn + dv // k_nope and v: the two halves of one [s, h, dn+dv] buffer
	kv := randomBits(r, c.dt, s*h*w)
	pe := randomBits(r, c.dt, s*dr)
	kRow, vRow := dn+dr+c.padK, dv+c.padV
	kOutLen, vOutLen := s*h*kRow, s*h*vRow

	S, H := int64(s), int64(h)
	peShape, peStrides := []int64{S, int64(dr)}, []int64{int64(dr), 1}
	if c.pe3 {
		peShape, peStrides = []int64{S, 1, int64(dr)}, []int64{int64(dr), 1, 1}
	}
	tensors := [5]capi.Tensor{
		{Buf: 0, Offset: 0, Dtype: int32(c.dt), Shape: []int64{S, H, int64(dn)}, Strides: []int64{H * int64(w), int64(w), 1}},
		{Buf: 1, Offset: 0, Dtype: int32(c.dt), Shape: peShape, Strides: peStrides},
		{Buf: 0, Offset: dn * c.dt.Size(), Dtype: int32(c.dt), Shape: []int64{S, H, int64(dv)}, Strides: []int64{H * int64(w), int64(w), 1}},
		{Buf: 2, Dtype: int32(c.f), Shape: []int64{S, H, int64(dn + dr)}, Strides: []int64{H * int64(kRow), int64(kRow), 1}},
		{Buf: 3, Dtype: int32(c.f), Shape: []int64{S, H, int64(dv)}, Strides: []int64{H * int64(vRow), int64(vRow), 1}},
	}

	// 1. the binding, over Go slices of the natural element types
	a := NewArgs()
	kvView := typedBuf(c.dt, kv) // k_nope and v: views into one Go slice
	a.KNope = kvView(0, tensors[0].Shape, tensors[0].Strides)
	a.KPe = typedInput(c.dt, pe, 0, tensors[1].Shape, tensors[1].Strides)
	a.V = kvView(dn, tensors[2].Shape, tensors[2].Strides)
	kOut, vOut := poisoned(kOutLen), poisoned(vOutLen)
	a.KOut = FP8Tensor(kOut, c.f, tensors[3].Shape...).WithStrides(tensors[3].Strides...)
	a.VOut = FP8Tensor(vOut, c.f, tensors[4].Shape...).WithStrides(tensors[4].Strides...)
	a.KScaleInv, a.VScaleInv = c.mk, c.mv
	if err := PackFP8(a); err != nil {
		t.Fatalf("%+v: %v", c, err)
	}

	// 2. the C API directly, on copies in C memory
	cOut := [][]byte{append([]byte(nil), kv...), append([]byte(nil), pe...), poisoned(kOutLen), poisoned(vOutLen)}
	st, msg := capi.Pack(capi.Call{T: tensors, KScaleInv: c.mk, VScaleInv: c.mv, Backend: int32(BackendReference)}, cOut)
	if st != 0 {
		t.Fatalf("%+v: C API: status %d: %s", c, st, msg)
	}
	if d := diff(kOut, cOut[2]); d != "" {
		t.Errorf("%+v: k_out differs from the C API's: %s", c, d)
	}
	if d := diff(vOut, cOut[3]); d != "" {
		t.Errorf("%+v: v_out differs from the C API's: %s", c, d)
	}

	// 3. the pure-Go model (padding bytes stay poisoned)
	wantK, wantV := poisoned(kOutLen), poisoned(vOutLen)
	in := make([]byte, 0, len(kv)+len(pe))
	in = append(append(in, kv...), pe...)
	peOff := s * h * w
	packOracle(s, h, dn, dr, dv, elemAt(c.dt, in),
		view3{0, h * w, w}, view3{peOff, dr, 0}, view3{dn, h * w, w},
		wantK, view3{0, h * kRow, kRow}, wantV, view3{0, h * vRow, vRow}, c.mk, c.mv, c.f)
	if d := diff(kOut, wantK); d != "" {
		t.Errorf("%+v: k_out differs from the Go model: %s", c, d)
	}
	if d := diff(vOut, wantV); d != "" {
		t.Errorf("%+v: v_out differs from the Go model: %s", c, d)
	}
}

func TestRandomAgainstC(t *testing.T) {
	r := rand.New(rand.NewSource(20261124))
	dims := [][3]int{{128, 64, 128}, {16, 8, 16}, {7, 3, 5}, {1, 1, 1}, {24, 40, 8}}
	shapes := [][2]int{{1, 1}, {3, 2}, {17, 5}, {64, 16}}
	scales := [][2]float32{{1, 1}, {1 / 0.0375, 1 / 0.021}, {0.5, 3}}
	for _, variant := range []string{"vector", "strided"} {
		t.Run(variant, func(t *testing.T) {
			if variant == "strided" {
				forceStrided(t)
			}
			n := 0
			for _, dt := range []Dtype{BF16, FP16, FP32} {
				for fi, f := range fp8Formats {
					for di, d := range dims {
						sh := shapes[(fi+di)%len(shapes)]
						sc := scales[(di+int(dt))%len(scales)]
						c := randCase{s: sh[0], h: sh[1], dn: d[0], dr: d[1], dv: d[2], dt: dt, f: f,
							pe3: (di+fi)%2 == 1, mk: sc[0], mv: sc[1]}
						if di%2 == 0 {
							c.padK, c.padV = 3, 16
						}
						runRandom(t, r, c)
						n++
					}
				}
			}
			t.Logf("%d random cases byte-identical to the C API and the Go model", n)
		})
	}
}

func TestKPe2DAnd3DAgree(t *testing.T) {
	const s, h, dn, dr, dv = 5, 4, 16, 8, 16
	r := rand.New(rand.NewSource(1))
	kv := randomBits(r, BF16, s*h*(dn+dv))
	pe := randomBits(r, BF16, s*dr)
	var outs [2][]byte
	for i, pe3 := range []bool{false, true} {
		a := NewArgs()
		kvView := typedBuf(BF16, kv)
		a.KNope = kvView(0, []int64{s, h, dn}, []int64{h * (dn + dv), dn + dv, 1})
		a.V = kvView(dn, []int64{s, h, dv}, []int64{h * (dn + dv), dn + dv, 1})
		if pe3 {
			a.KPe = typedInput(BF16, pe, 0, []int64{s, 1, dr}, []int64{dr, 12345, 1}) // the unit dim's stride is irrelevant
		} else {
			a.KPe = typedInput(BF16, pe, 0, []int64{s, dr}, []int64{dr, 1})
		}
		kOut := poisoned(s * h * (dn + dr))
		a.KOut = FP8Tensor(kOut, E4M3FN, s, h, dn+dr)
		a.VOut = FP8Tensor(poisoned(s*h*dv), E4M3FN, s, h, dv)
		if err := PackFP8(a); err != nil {
			t.Fatal(err)
		}
		outs[i] = kOut
	}
	if d := diff(outs[1], outs[0]); d != "" || allPoison(outs[0]) {
		t.Errorf("3-D k_pe differs from 2-D k_pe: %s", d)
	}
}

func TestDeviceTensorOverCMemory(t *testing.T) {
	// DeviceTensor takes addresses of memory not managed by Go; on a CPU build, C host memory
	// on the reference backend stands in for device memory.
	const s, h, dn, dr, dv = 3, 2, 8, 8, 8
	r := rand.New(rand.NewSource(2))
	kv := randomBits(r, FP16, s*h*(dn+dv))
	pe := randomBits(r, FP16, s*dr)
	ckv, cpe := capi.NewCBytes(len(kv)), capi.NewCBytes(len(pe))
	ck, cv := capi.NewCBytes(s*h*(dn+dr)), capi.NewCBytes(s*h*dv)
	for _, b := range []capi.CBytes{ckv, cpe, ck, cv} {
		defer b.Free()
	}
	copy(ckv.Bytes(), kv)
	copy(cpe.Bytes(), pe)
	copy(ck.Bytes(), poisoned(s*h*(dn+dr)))
	copy(cv.Bytes(), poisoned(s*h*dv))

	a := NewArgs()
	a.Backend = BackendReference
	a.KNope = DeviceTensor(ckv.Addr(), FP16, s, h, dn).WithStrides(h*(dn+dv), dn+dv, 1)
	a.V = DeviceTensor(ckv.Addr()+2*dn, FP16, s, h, dv).WithStrides(h*(dn+dv), dn+dv, 1)
	a.KPe = DeviceTensor(cpe.Addr(), FP16, s, dr)
	a.KOut = DeviceTensor(ck.Addr(), E5M2, s, h, dn+dr)
	a.VOut = DeviceTensor(cv.Addr(), E5M2, s, h, dv)
	a.KScaleInv = 4
	if err := PackFP8(a); err != nil {
		t.Fatal(err)
	}

	b := NewArgs()
	kvView := typedBuf(FP16, kv)
	b.KNope = kvView(0, []int64{s, h, dn}, []int64{h * (dn + dv), dn + dv, 1})
	b.V = kvView(dn, []int64{s, h, dv}, []int64{h * (dn + dv), dn + dv, 1})
	b.KPe = typedInput(FP16, pe, 0, []int64{s, dr}, []int64{dr, 1})
	kOut, vOut := poisoned(s*h*(dn+dr)), poisoned(s*h*dv)
	b.KOut, b.VOut = FP8Tensor(kOut, E5M2, s, h, dn+dr), FP8Tensor(vOut, E5M2, s, h, dv)
	b.KScaleInv = 4
	if err := PackFP8(b); err != nil {
		t.Fatal(err)
	}
	if d := diff(ck.Bytes(), kOut); d != "" || allPoison(kOut) {
		t.Errorf("k_out: C memory vs Go memory: %s", d)
	}
	if d := diff(cv.Bytes(), vOut); d != "" || allPoison(vOut) {
		t.Errorf("v_out: C memory vs Go memory: %s", d)
	}
}

func TestEmptyCall(t *testing.T) {
	// s = 0 is a successful no-op, with empty (even nil) slices
	a := NewArgs()
	a.KNope = BF16Tensor(nil, 0, 4, 8)
	a.KPe = BF16Tensor([]uint16{}, 0, 8)
	a.V = BF16Tensor(nil, 0, 4, 8)
	a.KOut = FP8Tensor(nil, E4M3FN, 0, 4, 16)
	out := poisoned(8)
	a.VOut = FP8Tensor(out, E4M3FN, 0, 4, 8)
	if err := PackFP8(a); err != nil {
		t.Fatal(err)
	}
	if !allPoison(out) {
		t.Error("an empty call wrote output bytes")
	}
}

// -------------------------------------------------------------------------------------------
// Error paths: status, message, outputs untouched

// errCase builds a valid [s=4, h=2, 8/8/8] bf16 -> e4m3fn call over a fresh bf16 buffer and
// poisoned outputs, lets mutate break it, and returns the error, the args and the outputs.
type errSetup struct {
	a          *Args
	kOut, vOut []byte
	capiT      [5]capi.Tensor // the same call for the raw C API (bufs: kv, pe, k_out, v_out)
	bufs       [][]byte
}

func newErrSetup() *errSetup {
	const s, h, d = 4, 2, 8
	e := &errSetup{}
	kv := make([]uint16, s*h*2*d)
	for i := range kv {
		kv[i] = 0x3F80
	}
	pe := make([]uint16, s*d)
	e.kOut, e.vOut = poisoned(s*h*2*d), poisoned(s*h*d)
	e.a = NewArgs()
	e.a.KNope = BF16Tensor(kv, s, h, d).WithStrides(h*2*d, 2*d, 1)
	e.a.V = BF16Tensor(kv[d:], s, h, d).WithStrides(h*2*d, 2*d, 1)
	e.a.KPe = BF16Tensor(pe, s, d)
	e.a.KOut = FP8Tensor(e.kOut, E4M3FN, s, h, 2*d)
	e.a.VOut = FP8Tensor(e.vOut, E4M3FN, s, h, d)
	bt, ft := int32(BF16), int32(E4M3FN)
	e.capiT = [5]capi.Tensor{
		{Buf: 0, Dtype: bt, Shape: []int64{s, h, d}, Strides: []int64{h * 2 * d, 2 * d, 1}},
		{Buf: 1, Dtype: bt, Shape: []int64{s, d}, Strides: []int64{d, 1}},
		{Buf: 0, Offset: 2 * d, Dtype: bt, Shape: []int64{s, h, d}, Strides: []int64{h * 2 * d, 2 * d, 1}},
		{Buf: 2, Dtype: ft, Shape: []int64{s, h, 2 * d}, Strides: []int64{h * 2 * d, 2 * d, 1}},
		{Buf: 3, Dtype: ft, Shape: []int64{s, h, d}, Strides: []int64{h * d, d, 1}},
	}
	e.bufs = [][]byte{append([]byte(nil), asBytes16(kv)...), append([]byte(nil), asBytes16(pe)...),
		poisoned(len(e.kOut)), poisoned(len(e.vOut))}
	return e
}

// expectError checks a failing PackFP8 (and Plan): status, message, untouched outputs. When
// wantMsg is "", the message must equal the one the C API gives for the same call (capi).
func expectError(t *testing.T, e *errSetup, want Status, wantMsgPart, wantCMsg string) {
	t.Helper()
	err := PackFP8(e.a)
	var me *Error
	if !errors.As(err, &me) {
		t.Fatalf("PackFP8: got %v, want an *Error with %v", err, want)
	}
	if me.Status != want || !errors.Is(err, want) || me.Op != "PackFP8" {
		t.Errorf("PackFP8: got %v (status %d), want %v", err, me.Status, want)
	}
	if me.Message == "" || !strings.Contains(me.Message, wantMsgPart) {
		t.Errorf("PackFP8: message %q does not contain %q", me.Message, wantMsgPart)
	}
	if wantCMsg != "" && me.Message != wantCMsg {
		t.Errorf("PackFP8: message %q, the C API says %q", me.Message, wantCMsg)
	}
	if !strings.Contains(err.Error(), want.String()) || !strings.Contains(err.Error(), me.Message) {
		t.Errorf("Error() = %q", err.Error())
	}
	if !allPoison(e.kOut) || !allPoison(e.vOut) {
		t.Errorf("a failing PackFP8 touched the outputs")
	}
	if _, err := Plan(e.a); !errors.Is(err, want) {
		t.Errorf("Plan: got %v, want %v", err, want)
	}
}

func TestErrorShape(t *testing.T) {
	e := newErrSetup()
	// v with 3 heads while k_nope has 2 (a view that fits its slice: only the shapes disagree)
	e.a.V = BF16Tensor(make([]uint16, 4*3*8), 4, 3, 8)
	e.capiT[2] = capi.Tensor{Buf: 4, Dtype: int32(BF16), Shape: []int64{4, 3, 8}, Strides: []int64{24, 8, 1}}
	e.bufs = append(e.bufs, make([]byte, 4*3*8*2))
	st, cmsg := capi.Pack(capi.Call{T: e.capiT, KScaleInv: 1, VScaleInv: 1}, e.bufs)
	if Status(st) != ErrShape || cmsg == "" || !allPoison(e.bufs[2]) || !allPoison(e.bufs[3]) {
		t.Fatalf("C API: status %d %q", st, cmsg)
	}
	expectError(t, e, ErrShape, "head counts differ", cmsg)
}

func TestErrorOverlap(t *testing.T) {
	e := newErrSetup()
	// k_out [4, 2, 16] and v_out [4, 2, 8] as views into one byte slice, v_out starting inside k_out
	buf := poisoned(4*2*16 + 64)
	e.kOut, e.vOut = buf, buf // both "outputs" are the one buffer: it must stay poisoned
	e.a.KOut = FP8Tensor(buf, E4M3FN, 4, 2, 16)
	e.a.VOut = FP8Tensor(buf[64:], E4M3FN, 4, 2, 8)
	e.capiT[3] = capi.Tensor{Buf: 2, Dtype: int32(E4M3FN), Shape: []int64{4, 2, 16}, Strides: []int64{32, 16, 1}}
	e.capiT[4] = capi.Tensor{Buf: 2, Offset: 64, Dtype: int32(E4M3FN), Shape: []int64{4, 2, 8}, Strides: []int64{16, 8, 1}}
	e.bufs[2] = poisoned(len(buf))
	st, cmsg := capi.Pack(capi.Call{T: e.capiT, KScaleInv: 1, VScaleInv: 1}, e.bufs)
	if Status(st) != ErrOverlap || cmsg == "" || !allPoison(e.bufs[2]) {
		t.Fatalf("C API: status %d %q", st, cmsg)
	}
	expectError(t, e, ErrOverlap, "overlaps", cmsg)

	// an output over an input's memory
	e = newErrSetup()
	kv := make([]uint16, 4*2*16)
	e.a.KNope = BF16Tensor(kv, 4, 2, 8).WithStrides(32, 16, 1)
	e.a.V = BF16Tensor(kv[8:], 4, 2, 8).WithStrides(32, 16, 1)
	e.a.VOut = FP8Tensor(asBytes16(kv)[128:], E4M3FN, 4, 2, 8)
	e.vOut = poisoned(len(e.vOut)) // v_out is the input now; only k_out is checked
	expectError(t, e, ErrOverlap, "overlaps", "")
	for _, x := range kv {
		if x != 0 {
			t.Fatal("a failing call wrote into the input")
		}
	}
}

func TestErrorViewPastSliceEnd(t *testing.T) {
	// k_nope's view needs 4*2*16 - 8 elements of its slice; one short must fail in Go, before
	// the C call (the library, which cannot see slice lengths, would accept it and read past the
	// end). With the full slice, the same call succeeds.
	for _, short := range []int{1, 0} {
		e := newErrSetup()
		kv := make([]uint16, 4*2*16-8-short)
		e.a.KNope = BF16Tensor(kv, 4, 2, 8).WithStrides(32, 16, 1)
		if short == 0 {
			if err := PackFP8(e.a); err != nil {
				t.Fatalf("the exact-length slice: %v", err)
			}
			continue
		}
		expectError(t, e, ErrShape, "k_nope: the view (bf16, shape [4 2 8], strides [32 16 1]) needs 120 elements but its Go slice holds 119", "")
	}
	// outputs too, and the default (contiguous) strides
	e := newErrSetup()
	e.a.VOut = FP8Tensor(poisoned(4*2*8-1), E4M3FN, 4, 2, 8)
	expectError(t, e, ErrShape, "v_out: the view (e4m3fn, shape [4 2 8], strides [16 8 1]) needs 64 elements but its Go slice holds 63", "")
	// a raw byte slice viewed as fp32: whole elements only
	e = newErrSetup()
	e.a.KPe = BytesTensor(make([]byte, 4*8*2+1), BF16, 4, 9)
	expectError(t, e, ErrShape, "needs 36 elements but its Go slice holds 32", "")
}

func TestErrorOthers(t *testing.T) {
	type mut struct {
		name string
		f    func(e *errSetup)
		want Status
		part string
	}
	for _, m := range []mut{
		{"dtype mismatch", func(e *errSetup) { e.a.V = FP16Tensor(make([]uint16, 64), 4, 2, 8) }, ErrDtype, "share one dtype"},
		{"output dtypes differ", func(e *errSetup) { e.a.VOut.Dtype = E5M2 }, ErrDtype, "share one fp8 dtype"},
		{"2-D k_nope", func(e *errSetup) { e.a.KNope = BF16Tensor(make([]uint16, 64), 8, 8) }, ErrRank, "k_nope: ndim is 2"},
		{"rank 5", func(e *errSetup) { e.a.KNope = BF16Tensor(make([]uint16, 64), 1, 1, 1, 8, 8) }, ErrRank, "at most 4"},
		{"strides length", func(e *errSetup) { e.a.KNope = e.a.KNope.WithStrides(1, 1) }, ErrRank, "3 shape entries but 2 strides"},
		{"inner stride", func(e *errSetup) { e.a.KPe = BF16Tensor(make([]uint16, 64), 4, 8).WithStrides(16, 2) }, ErrStride, "innermost stride"},
		{"negative stride", func(e *errSetup) { e.a.KPe = e.a.KPe.WithStrides(-8, 1) }, ErrStride, "negative stride"},
		{"aliasing output rows", func(e *errSetup) { e.a.VOut = e.a.VOut.WithStrides(8, 4, 1) }, ErrStride, "alias"},
		{"misaligned", func(e *errSetup) { e.a.KPe = BytesTensor(make([]byte, 80)[1:], BF16, 4, 8) }, ErrAlignment, "aligned"},
		{"zero head dim", func(e *errSetup) {
			e.a.KPe = BF16Tensor(nil, 4, 0)
			e.a.KOut = FP8Tensor(e.kOut, E4M3FN, 4, 2, 8)
		}, ErrUnsupportedDims, "head dims"},
		{"no tensor", func(e *errSetup) { e.a.KPe = Tensor{Dtype: BF16, Shape: []int64{4, 8}} }, ErrNullPointer, "k_pe.data is NULL"},
		{"zero Args", func(e *errSetup) {
			*e.a = Args{KNope: e.a.KNope, KPe: e.a.KPe, V: e.a.V, KOut: e.a.KOut, VOut: e.a.VOut}
		}, ErrInvalidArgument, "NewArgs"},
		{"bad pdl", func(e *errSetup) { e.a.PDL = 7 }, ErrInvalidArgument, "pdl"},
		{"unknown flag", func(e *errSetup) { e.a.Flags = 0x80 }, ErrInvalidArgument, "flag"},
		{"no such backend", func(e *errSetup) { e.a.Backend = 9 }, ErrNoSuchBackend, "backend 9"},
		{"gpu backend with Go memory", func(e *errSetup) { e.a.Backend = BackendCUDA }, ErrMemorySpace, "device memory"},
		{"negative device", func(e *errSetup) { e.a.Device = -1 }, ErrDevice, "negative"},
	} {
		t.Run(m.name, func(t *testing.T) {
			e := newErrSetup()
			m.f(e)
			expectError(t, e, m.want, m.part, "")
		})
	}
	if err := PackFP8(nil); !errors.Is(err, ErrNullPointer) {
		t.Errorf("PackFP8(nil) = %v", err)
	}
}

// -------------------------------------------------------------------------------------------
// Concurrency

func TestConcurrent(t *testing.T) {
	// Goroutines pack different problems at once; every third call fails on purpose, and its
	// message must be its own (the library's last error is per thread).
	const workers, iters = 8, 25
	var wg sync.WaitGroup
	errs := make(chan string, workers*iters)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w)))
			f := fp8Formats[w%4]
			for i := 0; i < iters; i++ {
				s, h, dn, dr, dv := 1+r.Intn(20), 1+r.Intn(6), 1+r.Intn(40), 1+r.Intn(20), 1+r.Intn(40)
				kn, pe, v := randomBits(r, BF16, s*h*dn), randomBits(r, BF16, s*dr), randomBits(r, BF16, s*h*dv)
				a := NewArgs()
				a.KNope = typedInput(BF16, kn, 0, []int64{int64(s), int64(h), int64(dn)}, nil)
				a.KPe = typedInput(BF16, pe, 0, []int64{int64(s), int64(dr)}, nil)
				a.V = typedInput(BF16, v, 0, []int64{int64(s), int64(h), int64(dv)}, nil)
				kOut, vOut := poisoned(s*h*(dn+dr)), poisoned(s*h*dv)
				a.KOut = FP8Tensor(kOut, f, int64(s), int64(h), int64(dn+dr))
				a.VOut = FP8Tensor(vOut, f, int64(s), int64(h), int64(dv))
				a.KScaleInv, a.VScaleInv = float32(w+1), 1/float32(i+1)
				if i%3 == 2 {
					// break it: v_out's last dim, with a message naming this worker's dims
					a.VOut = FP8Tensor(vOut, f, int64(s), int64(h), int64(dv-1))
					err := PackFP8(a)
					var e *Error
					if !errors.As(err, &e) || e.Status != ErrShape ||
						!strings.Contains(e.Message, fmt.Sprintf("v_out [%d, %d, %d]", s, h, dv-1)) || !allPoison(vOut) {
						errs <- fmt.Sprintf("worker %d call %d: %v", w, i, err)
					}
					continue
				}
				if err := PackFP8(a); err != nil {
					errs <- fmt.Sprintf("worker %d call %d: %v", w, i, err)
					continue
				}
				wantK, wantV := poisoned(len(kOut)), poisoned(len(vOut))
				in := append(append(append([]byte(nil), kn...), pe...), v...)
				packOracle(s, h, dn, dr, dv, elemAt(BF16, in),
					view3{0, h * dn, dn}, view3{s * h * dn, dr, 0}, view3{s*h*dn + s*dr, h * dv, dv},
					wantK, view3{0, h * (dn + dr), dn + dr}, wantV, view3{0, h * dv, dv}, a.KScaleInv, a.VScaleInv, f)
				if d := diff(kOut, wantK) + diff(vOut, wantV); d != "" {
					errs <- fmt.Sprintf("worker %d call %d: %s", w, i, d)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
