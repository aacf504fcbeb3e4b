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
}

// Pack copies bufs into C memory, calls mlakv_pack_fp8 with an mlakv_pack_args set up by
// mlakv_pack_args_init, copies every buffer back into bufs and returns the status and the
// message of mlakv_last_error() (empty on success).
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
	C.mlakv_pack_args_init(args)
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
	return int32(st), msg
}

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
