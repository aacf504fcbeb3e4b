package mlakv

/*
#include <mlakv/mlakv.h>
#include <stdint.h>
#include <string.h>

// The Go side describes a call with this pointer-free struct (it lives in Go memory, which may
// be passed to C only if it holds no Go pointers). Addresses of Go memory travel as separate
// arguments of the helpers below, which is what the cgo rules allow; the mlakv_pack_args that
// holds them is a local variable of the helper, on the C stack, gone when the helper returns.
typedef struct mlakv_go_tensor {
  uintptr_t addr;  // device / foreign address, used when the Go pointer argument is NULL
  int32_t dtype;
  int32_t ndim;
  int64_t shape[MLAKV_MAX_RANK];
  int64_t strides[MLAKV_MAX_RANK];
} mlakv_go_tensor;

typedef struct mlakv_go_call {
  mlakv_go_tensor t[5];  // k_nope, k_pe, v, k_out, v_out
  float k_scale_inv, v_scale_inv;
  uintptr_t k_scale_inv_ptr, v_scale_inv_ptr;  // used when the Go pointer argument is NULL
  uintptr_t stream;
  int32_t backend, device, pdl;
  uint32_t flags;
  int32_t scale_granularity;       // since 0.2
  uintptr_t k_amax, v_amax;        // used when the Go pointer argument is NULL
} mlakv_go_call;

static void mlakv_go_tensor_fill(mlakv_tensor* out, const mlakv_go_tensor* in, void* go_ptr) {
  int i;
  out->data = go_ptr ? go_ptr : (void*)in->addr;
  out->dtype = in->dtype;
  out->ndim = in->ndim;
  for (i = 0; i < MLAKV_MAX_RANK; ++i) {
    out->shape[i] = in->shape[i];
    out->strides[i] = in->strides[i];
  }
}

// p0..p4: Go memory of the five tensors; ks, vs: of the per-head multipliers; ka, va: of the amax
// outputs (each NULL when that operand is not Go memory).
static mlakv_status mlakv_go_args(mlakv_pack_args* a, const mlakv_go_call* c, void* p0, void* p1,
                                  void* p2, void* p3, void* p4, void* ks, void* vs, void* ka,
                                  void* va) {
  // the library's defaults for this header's struct (never the 0.1 entry point, which fills only
  // the 456-byte 0.1 layout)
  mlakv_status st = mlakv_pack_args_init_sized(a, sizeof *a);
  if (st != MLAKV_OK) return st;
  mlakv_go_tensor_fill(&a->k_nope, &c->t[0], p0);
  mlakv_go_tensor_fill(&a->k_pe, &c->t[1], p1);
  mlakv_go_tensor_fill(&a->v, &c->t[2], p2);
  mlakv_go_tensor_fill(&a->k_out, &c->t[3], p3);
  mlakv_go_tensor_fill(&a->v_out, &c->t[4], p4);
  a->k_scale_inv = c->k_scale_inv;
  a->v_scale_inv = c->v_scale_inv;
  a->k_scale_inv_ptr = ks ? (const float*)ks : (const float*)c->k_scale_inv_ptr;
  a->v_scale_inv_ptr = vs ? (const float*)vs : (const float*)c->v_scale_inv_ptr;
  a->backend = c->backend;
  a->device = c->device;
  a->stream = (void*)c->stream;
  a->pdl = c->pdl;
  a->flags = c->flags;
  a->scale_granularity = c->scale_granularity;
  a->k_amax = ka ? (float*)ka : (float*)c->k_amax;
  a->v_amax = va ? (float*)va : (float*)c->v_amax;
  return MLAKV_OK;
}

static mlakv_status mlakv_go_pack(const mlakv_go_call* c, void* p0, void* p1, void* p2, void* p3,
                                  void* p4, void* ks, void* vs, void* ka, void* va) {
  mlakv_pack_args a;
  mlakv_status st = mlakv_go_args(&a, c, p0, p1, p2, p3, p4, ks, vs, ka, va);
  return st != MLAKV_OK ? st : mlakv_pack_fp8(&a);
}

static mlakv_status mlakv_go_plan(const mlakv_go_call* c, void* p0, void* p1, void* p2, void* p3,
                                  void* p4, void* ks, void* vs, void* ka, void* va, char* buf,
                                  size_t size, size_t* needed) {
  mlakv_pack_args a;
  mlakv_status st = mlakv_go_args(&a, c, p0, p1, p2, p3, p4, ks, vs, ka, va);
  return st != MLAKV_OK ? st : mlakv_pack_fp8_plan(&a, buf, size, needed);
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Args are the arguments of [PackFP8] and [Plan] (mlakv_pack_args).
//
// Inputs KNope [s, h, D_nope], KPe [s, D_rope] or [s, 1, D_rope] and V [s, h, D_v] share one
// dtype (BF16, FP16 or FP32) and have inner stride 1; outputs KOut [s, h, D_nope + D_rope] and
// VOut [s, h, D_v] share one FP8 format and have inner stride 1. Other strides are free
// (non-negative), so KNope and V can be the two halves of one [s, h, D_nope + D_v] buffer.
//
// Make Args with [NewArgs]: it sets KScaleInv and VScaleInv to 1, the library's defaults. The
// zero value of Args has multipliers of 0, which would quantize everything to zero; PackFP8
// and Plan reject a multiplier of exactly 0 ([ErrInvalidArgument]) unless the matching
// *ScaleInvPtr is set (or the scales are per head).
//
// Since mlakv 0.2 the multipliers may be per head (ScaleGranularity, KScaleInvPerHead,
// VScaleInvPerHead) and a call may accumulate the inputs' absolute maximum into amax outputs
// (KAmax, VAmax, KAmaxPtr, VAmaxPtr), for calibration: zero the amax buffers, run a few
// batches, take scale = amax / fp8 max, then pack with 1/scale.
type Args struct {
	KNope, KPe, V Tensor // inputs
	KOut, VOut    Tensor // outputs, written by PackFP8

	// KScaleInv and VScaleInv are the fp32 multipliers (1/scale) of K and V, used when the
	// matching pointer below is 0.
	KScaleInv, VScaleInv float32

	// KScaleInvPtr and VScaleInvPtr, when non-zero, are addresses of a float32 multiplier
	// that the backend reads when the operation runs (device memory for GPU backends, so that
	// a captured CUDA graph sees later values; memory not managed by Go, e.g. C.malloc'd,
	// for the reference backend). Unsafe in the same way as [DeviceTensor]: never the address
	// of a Go variable.
	KScaleInvPtr, VScaleInvPtr uintptr

	// ScaleGranularity is ScalePerTensor (the zero value: one multiplier each for K and V) or
	// ScalePerHead: h multipliers each (h = KNope.Shape[1]), head j of KOut (its k_nope part
	// and its copy of k_pe) quantized with K multiplier j, head j of VOut with V multiplier j,
	// read from KScaleInvPerHead / VScaleInvPerHead (Go memory) or from h float32s at
	// KScaleInvPtr / VScaleInvPtr (device memory). Setting KScaleInvPerHead or VScaleInvPerHead
	// makes a ScalePerTensor call per head. Per-head scales need both K's and V's; a call
	// without them fails with [ErrNullPointer].
	ScaleGranularity ScaleGranularity

	// KScaleInvPerHead and VScaleInvPerHead are per-head multipliers in Go memory, h each (the
	// call then runs on the reference backend, like every Go slice). Non-nil means
	// ScalePerHead. Use KScaleInvPtr / VScaleInvPtr (not both) for device memory.
	KScaleInvPerHead, VScaleInvPerHead []float32

	// KAmax and VAmax, when non-nil, are amax outputs in Go memory (reference backend): one
	// float32 with per-tensor scales, h with per-head scales. Each call stores
	// amax = max(amax, max |x|) over its inputs before scaling: KAmax over k_nope and k_pe (per
	// head: KAmax[j] over head j of k_nope and all of k_pe), VAmax over v. NaN is ignored, an
	// infinity counts, and the maximum is taken on the int32 bit patterns (the float maximum
	// for values >= +0, exact in any thread order). Zero them before calibrating. The library
	// refuses one that overlaps another operand ([ErrOverlap]).
	KAmax, VAmax []float32

	// KAmaxPtr and VAmaxPtr, when non-zero, are amax outputs in memory not managed by Go
	// (device memory for GPU backends; 1 or h float32s), written by the backend when the
	// operation runs. Unsafe in the same way as [DeviceTensor]. Not together with KAmax / VAmax.
	KAmaxPtr, VAmaxPtr uintptr

	Backend Backend // default BackendAuto
	Device  int32   // device ordinal for GPU backends
	Stream  uintptr // cudaStream_t / hipStream_t; 0 = the legacy default stream
	PDL     PDLMode // default PDLAuto
	Flags   Flags
}

// NewArgs returns Args with the library's defaults (MLAKV_PACK_ARGS_INIT): multipliers 1,
// BackendAuto, device 0, default stream, PDLAuto, no flags, and no tensors.
func NewArgs() *Args {
	return &Args{KScaleInv: 1, VScaleInv: 1}
}

var callPool = sync.Pool{New: func() interface{} { return new(C.mlakv_go_call) }}

// prepared is a call checked in Go and flattened for the C helpers.
type prepared struct {
	c      *C.mlakv_go_call // pooled Go memory without Go pointers
	ptr    [5]unsafe.Pointer
	owner  [5][]byte         // keeps the Go slices visibly alive until the call returns
	fptr   [4]unsafe.Pointer // per-head K, V multipliers; K, V amax (Go memory, or nil)
	fowner [4][]float32
}

var argNames = [5]string{"k_nope", "k_pe", "v", "k_out", "v_out"}

func (a *Args) prepare(op string) (*prepared, error) {
	if a == nil {
		return nil, &Error{Op: op, Status: ErrNullPointer, Message: "args is nil"}
	}
	ts := [5]*Tensor{&a.KNope, &a.KPe, &a.V, &a.KOut, &a.VOut}
	p := &prepared{}
	var ls [5]layout
	anyGo := false
	for i, t := range ts {
		l, err := t.check(argNames[i])
		if err != nil {
			err.Op = op
			return nil, err
		}
		ls[i] = l
		if t.goMem {
			anyGo = true
			p.ptr[i] = l.goPtr
			p.owner[i] = t.mem
		}
	}
	gran, err := a.scalesAndAmax(op, p, ls[0])
	if err != nil {
		return nil, err
	}
	if a.KScaleInvPerHead != nil || a.VScaleInvPerHead != nil || a.KAmax != nil || a.VAmax != nil {
		anyGo = true
	}
	if gran == ScalePerTensor && a.KScaleInv == 0 && a.KScaleInvPtr == 0 {
		return nil, &Error{Op: op, Status: ErrInvalidArgument, Message: "KScaleInv is 0 (the zero value of Args; make Args with NewArgs, which sets the multipliers to 1)"}
	}
	if gran == ScalePerTensor && a.VScaleInv == 0 && a.VScaleInvPtr == 0 {
		return nil, &Error{Op: op, Status: ErrInvalidArgument, Message: "VScaleInv is 0 (the zero value of Args; make Args with NewArgs, which sets the multipliers to 1)"}
	}
	backend := a.Backend
	if anyGo {
		// Go memory may only be used synchronously, during the call: the reference backend.
		switch backend {
		case BackendAuto:
			backend = BackendReference
		case BackendReference:
		case BackendCUDA, BackendHIP:
			return nil, &Error{Op: op, Status: ErrMemorySpace, Message: "the " + backend.String() +
				" backend needs device memory (DeviceTensor, *Ptr fields), but a tensor, multiplier or amax output is a Go slice; Go memory runs on the reference backend"}
		}
	}

	c := callPool.Get().(*C.mlakv_go_call)
	*c = C.mlakv_go_call{}
	for i := range ls {
		ct := &c.t[i]
		ct.addr = C.uintptr_t(ls[i].addr)
		ct.dtype = C.int32_t(ts[i].Dtype)
		ct.ndim = C.int32_t(ls[i].ndim)
		for d := 0; d < MaxRank; d++ {
			ct.shape[d] = C.int64_t(ls[i].shape[d])
			ct.strides[d] = C.int64_t(ls[i].strides[d])
		}
	}
	c.k_scale_inv = C.float(a.KScaleInv)
	c.v_scale_inv = C.float(a.VScaleInv)
	c.k_scale_inv_ptr = C.uintptr_t(a.KScaleInvPtr)
	c.v_scale_inv_ptr = C.uintptr_t(a.VScaleInvPtr)
	c.stream = C.uintptr_t(a.Stream)
	c.backend = C.int32_t(backend)
	c.device = C.int32_t(a.Device)
	c.pdl = C.int32_t(a.PDL)
	c.flags = C.uint32_t(a.Flags)
	c.scale_granularity = C.int32_t(gran)
	c.k_amax = C.uintptr_t(a.KAmaxPtr)
	c.v_amax = C.uintptr_t(a.VAmaxPtr)
	p.c = c
	return p, nil
}

// scalesAndAmax checks the per-head multipliers and amax outputs held in Go slices against what
// the library will read and write (h floats per head, 1 per tensor) and records their addresses
// in p; it returns the granularity passed to C. kNope is k_nope's checked layout (h is its
// second dimension when it has three).
func (a *Args) scalesAndAmax(op string, p *prepared, kNope layout) (ScaleGranularity, *Error) {
	fail := func(st Status, format string, args ...interface{}) (ScaleGranularity, *Error) {
		return 0, &Error{Op: op, Status: st, Message: fmt.Sprintf(format, args...)}
	}
	if a.KScaleInvPerHead != nil && a.KScaleInvPtr != 0 {
		return fail(ErrInvalidArgument, "KScaleInvPerHead and KScaleInvPtr are both set: per-head multipliers come from Go memory or from a device address, not both")
	}
	if a.VScaleInvPerHead != nil && a.VScaleInvPtr != 0 {
		return fail(ErrInvalidArgument, "VScaleInvPerHead and VScaleInvPtr are both set: per-head multipliers come from Go memory or from a device address, not both")
	}
	if a.KAmax != nil && a.KAmaxPtr != 0 {
		return fail(ErrInvalidArgument, "KAmax and KAmaxPtr are both set")
	}
	if a.VAmax != nil && a.VAmaxPtr != 0 {
		return fail(ErrInvalidArgument, "VAmax and VAmaxPtr are both set")
	}
	gran := a.ScaleGranularity
	if gran == ScalePerTensor && (a.KScaleInvPerHead != nil || a.VScaleInvPerHead != nil) {
		gran = ScalePerHead
	}
	known := gran == ScalePerTensor || gran == ScalePerHead // else the library refuses the call before reading anything
	h := int64(-1)
	if kNope.ndim == 3 {
		h = kNope.shape[1]
	}
	slices := [4]struct {
		name    string
		s       []float32
		perHead bool // h floats per head (scales are always per head)
	}{
		{"KScaleInvPerHead", a.KScaleInvPerHead, true},
		{"VScaleInvPerHead", a.VScaleInvPerHead, true},
		{"KAmax", a.KAmax, gran == ScalePerHead},
		{"VAmax", a.VAmax, gran == ScalePerHead},
	}
	for i, sl := range slices {
		if sl.s == nil {
			continue
		}
		if len(sl.s) > 0 {
			p.fptr[i] = unsafe.Pointer(&sl.s[0])
			p.fowner[i] = sl.s
		}
		if !known {
			continue
		}
		want, what := int64(1), "one float32 (per-tensor scales)"
		if sl.perHead {
			if h < 0 {
				return fail(ErrRank, "%s holds one float32 per head, but k_nope has %d dimensions, not 3 ([s, h, D_nope]), so h is unknown", sl.name, kNope.ndim)
			}
			want, what = h, "h float32s (one per head; h = k_nope's second dimension)"
		}
		if int64(len(sl.s)) != want {
			return fail(ErrShape, "%s holds %d float32s; the call needs %d: %s", sl.name, len(sl.s), want, what)
		}
	}
	return gran, nil
}

func (p *prepared) release() {
	runtime.KeepAlive(p.owner)
	runtime.KeepAlive(p.fowner)
	callPool.Put(p.c)
	p.c = nil
}

// PackFP8 runs the operation: KOut and VOut receive the FP8 results. Everything is validated
// before anything is written: on error no output byte has been touched. With Go memory the call
// runs on the reference backend and has finished when PackFP8 returns; with device memory on a
// GPU backend it is an asynchronous launch on a.Stream. s = 0 or h = 0 is a successful no-op.
//
// The error is an *[Error]; test its code with errors.Is(err, mlakv.ErrShape) and friends.
func PackFP8(a *Args) error {
	p, err := a.prepare("PackFP8")
	if err != nil {
		return err
	}
	defer p.release()
	runtime.LockOSThread() // mlakv_last_error() is per thread
	defer runtime.UnlockOSThread()
	st := C.mlakv_go_pack(p.c, p.ptr[0], p.ptr[1], p.ptr[2], p.ptr[3], p.ptr[4],
		p.fptr[0], p.fptr[1], p.fptr[2], p.fptr[3])
	return callErr("PackFP8", st, lastErrorIf(st))
}

// Plan returns, as one line of text, which backend, kernel variant and launch configuration
// PackFP8(a) would use, after the same validation (it writes nothing).
func Plan(a *Args) (string, error) {
	p, err := a.prepare("Plan")
	if err != nil {
		return "", err
	}
	defer p.release()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	text, st := textCall(func(buf *C.char, size C.size_t, needed *C.size_t) C.mlakv_status {
		return C.mlakv_go_plan(p.c, p.ptr[0], p.ptr[1], p.ptr[2], p.ptr[3], p.ptr[4],
			p.fptr[0], p.fptr[1], p.fptr[2], p.fptr[3], buf, size, needed)
	})
	if st != C.MLAKV_OK {
		return "", callErr("Plan", st, lastError())
	}
	return text, nil
}
