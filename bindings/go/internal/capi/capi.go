// Package capi calls the mlakv C API directly, with C memory and its own argument setup, as an
// oracle for the tests of package mlakv: results of the Go binding are compared with what the
// C library gives for the same bytes through this second, independent path. It is internal: not
// part of the binding's API.
package capi

/*
#cgo pkg-config: mlakv
#include <mlakv/mlakv.h>
#include <stdlib.h>
#include <string.h>

// The exported 0.1 entry point, not the header's function-like macro of the same name (which
// calls mlakv_pack_args_init_sized with this header's sizeof).
static void capi_init_0_1(mlakv_pack_args* a) { (mlakv_pack_args_init)(a); }

static mlakv_pack_args capi_defaults(void) {
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  return a;
}

static void capi_set_tensor(mlakv_tensor* t, void* data, int32_t dtype, int32_t ndim,
                            const int64_t* shape, const int64_t* strides) {
  int i;
  t->data = data;
  t->dtype = dtype;
  t->ndim = ndim;
  for (i = 0; i < ndim && i < MLAKV_MAX_RANK; ++i) {
    t->shape[i] = shape[i];
    t->strides[i] = strides[i];
  }
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// Tensor describes one argument: a view into buffer Buf (an index into the bufs of Pack)
// starting at byte Offset, with shape and strides in elements.
type Tensor struct {
	Buf     int
	Offset  int
	Dtype   int32
	Shape   []int64
	Strides []int64
}

// Call is one mlakv_pack_fp8 call. Tensors are k_nope, k_pe, v, k_out, v_out.
type Call struct {
	T                    [5]Tensor
	KScaleInv, VScaleInv float32
	Backend              int32
	// since 0.2: the granularity, and per-head multipliers / amax outputs (copied to C memory
	// for the call and, for amax, back; nil: a NULL pointer)
	Granularity      int32
	KScales, VScales []float32
	KAmax, VAmax     []float32
}

// cFloats copies v into C memory (nil for a nil slice).
func cFloats(v []float32) *C.float {
	if v == nil {
		return nil
	}
	p := (*C.float)(C.malloc(C.size_t(4*len(v) + 4)))
	if p == nil {
		panic("capi: malloc failed")
	}
	copy(unsafe.Slice((*float32)(unsafe.Pointer(p)), len(v)), v)
	return p
}

// Pack copies bufs into C memory, calls mlakv_pack_fp8 with an mlakv_pack_args set up by
// mlakv_pack_args_init_sized(args, sizeof), copies every buffer (and the amax outputs) back and
// returns the status and the message of mlakv_last_error() (empty on success).
func Pack(c Call, bufs [][]byte) (int32, string) {
	cbufs := make([]unsafe.Pointer, len(bufs))
	for i, b := range bufs {
		cbufs[i] = C.malloc(C.size_t(len(b) + 1))
		if cbufs[i] == nil {
			panic("capi: malloc failed")
		}
		if len(b) > 0 {
			C.memcpy(cbufs[i], unsafe.Pointer(&b[0]), C.size_t(len(b)))
		}
	}
	defer func() {
		for _, p := range cbufs {
			C.free(p)
		}
	}()
	args := (*C.mlakv_pack_args)(C.malloc(C.size_t(unsafe.Sizeof(C.mlakv_pack_args{}))))
	defer C.free(unsafe.Pointer(args))
	if st := C.mlakv_pack_args_init_sized(args, C.size_t(unsafe.Sizeof(C.mlakv_pack_args{}))); st != C.MLAKV_OK {
		panic(fmt.Sprintf("capi: mlakv_pack_args_init_sized: status %d", int(st)))
	}
	ts := [5]*C.mlakv_tensor{&args.k_nope, &args.k_pe, &args.v, &args.k_out, &args.v_out}
	for i, t := range c.T {
		if len(t.Shape) != len(t.Strides) || len(t.Shape) > 4 {
			panic(fmt.Sprintf("capi: tensor %d: bad shape/strides", i))
		}
		var shape, strides [4]C.int64_t
		for d := range t.Shape {
			shape[d] = C.int64_t(t.Shape[d])
			strides[d] = C.int64_t(t.Strides[d])
		}
		data := unsafe.Add(cbufs[t.Buf], t.Offset)
		C.capi_set_tensor(ts[i], data, C.int32_t(t.Dtype), C.int32_t(len(t.Shape)), &shape[0], &strides[0])
	}
	args.k_scale_inv = C.float(c.KScaleInv)
	args.v_scale_inv = C.float(c.VScaleInv)
	args.backend = C.mlakv_backend(c.Backend)
	args.scale_granularity = C.mlakv_scale_granularity(c.Granularity)
	fl := [4]*C.float{cFloats(c.KScales), cFloats(c.VScales), cFloats(c.KAmax), cFloats(c.VAmax)}
	defer func() {
		for _, p := range fl {
			C.free(unsafe.Pointer(p))
		}
	}()
	args.k_scale_inv_ptr, args.v_scale_inv_ptr = fl[0], fl[1]
	args.k_amax, args.v_amax = fl[2], fl[3]

	runtime.LockOSThread()
	st := C.mlakv_pack_fp8(args)
	msg := ""
	if st != C.MLAKV_OK {
		msg = C.GoString(C.mlakv_last_error())
	}
	runtime.UnlockOSThread()

	for i, b := range bufs {
		if len(b) > 0 {
			C.memcpy(unsafe.Pointer(&b[0]), cbufs[i], C.size_t(len(b)))
		}
	}
	for i, out := range [][]float32{c.KAmax, c.VAmax} {
		if len(out) > 0 {
			copy(out, unsafe.Slice((*float32)(unsafe.Pointer(fl[2+i])), len(out)))
		}
	}
	return int32(st), msg
}

// InitSized runs mlakv_pack_args_init_sized(buf, size) on a C buffer of room bytes filled with
// fill, and returns the status and the buffer's bytes afterwards.
func InitSized(size, room int, fill byte) (int32, []byte) {
	p := C.malloc(C.size_t(room))
	if p == nil {
		panic("capi: malloc failed")
	}
	defer C.free(p)
	C.memset(p, C.int(fill), C.size_t(room))
	st := C.mlakv_pack_args_init_sized((*C.mlakv_pack_args)(p), C.size_t(size))
	return int32(st), C.GoBytes(p, C.int(room))
}

// InitLegacy runs the exported 0.1 entry point mlakv_pack_args_init (not the header's macro)
// on a C buffer of room bytes filled with fill, and returns the buffer's bytes afterwards.
func InitLegacy(room int, fill byte) []byte {
	p := C.malloc(C.size_t(room))
	if p == nil {
		panic("capi: malloc failed")
	}
	defer C.free(p)
	C.memset(p, C.int(fill), C.size_t(room))
	C.capi_init_0_1((*C.mlakv_pack_args)(p))
	return C.GoBytes(p, C.int(room))
}

// Defaults returns the bytes of MLAKV_PACK_ARGS_INIT (C's own macro) and sizeof(mlakv_pack_args).
func Defaults() []byte {
	var a C.mlakv_pack_args = C.capi_defaults()
	return C.GoBytes(unsafe.Pointer(&a), C.int(unsafe.Sizeof(a)))
}

// CFloats is an array of float32 in C memory, for KScaleInvPtr / KAmaxPtr with per-head scales
// on the reference backend (memory not managed by Go).
type CFloats struct {
	p *C.float
	n int
}

// NewCFloats allocates len(v) C floats holding v. Free them with Free.
func NewCFloats(v []float32) CFloats {
	p := cFloats(v)
	if p == nil {
		p = cFloats([]float32{})
	}
	return CFloats{p, len(v)}
}

// Addr returns the address of element 0.
func (f CFloats) Addr() uintptr { return uintptr(unsafe.Pointer(f.p)) }

// Values copies the floats out.
func (f CFloats) Values() []float32 {
	return append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(f.p)), f.n)...)
}

// Set stores v (len(v) <= the length it was made with).
func (f CFloats) Set(v []float32) { copy(unsafe.Slice((*float32)(unsafe.Pointer(f.p)), f.n), v) }

// Free releases the memory.
func (f CFloats) Free() { C.free(unsafe.Pointer(f.p)) }

// CFloat32 is one float32 in C memory, for the *ScaleInvPtr fields (memory not managed by Go).
type CFloat32 struct{ p *C.float }

// NewCFloat32 allocates a C float holding v. Free it with Free.
func NewCFloat32(v float32) CFloat32 {
	p := (*C.float)(C.malloc(C.size_t(unsafe.Sizeof(C.float(0)))))
	if p == nil {
		panic("capi: malloc failed")
	}
	*p = C.float(v)
	return CFloat32{p}
}

// Addr returns the address as a uintptr.
func (f CFloat32) Addr() uintptr { return uintptr(unsafe.Pointer(f.p)) }

// Set stores v.
func (f CFloat32) Set(v float32) { *f.p = C.float(v) }

// Free releases the memory.
func (f CFloat32) Free() { C.free(unsafe.Pointer(f.p)) }

// CBytes is a byte buffer in C memory, for DeviceTensor tests on the reference backend.
type CBytes struct {
	p unsafe.Pointer
	n int
}

// NewCBytes allocates n bytes of C memory (at least 16-byte aligned).
func NewCBytes(n int) CBytes {
	p := C.malloc(C.size_t(n + 1))
	if p == nil {
		panic("capi: malloc failed")
	}
	return CBytes{p, n}
}

// Addr returns the address of byte 0.
func (b CBytes) Addr() uintptr { return uintptr(b.p) }

// Bytes returns the C memory as a Go slice (the memory is not managed by Go; valid until Free).
func (b CBytes) Bytes() []byte { return unsafe.Slice((*byte)(b.p), b.n) }

// Free releases the memory.
func (b CBytes) Free() { C.free(b.p) }
