package mlakv

import (
	"fmt"
	"math/bits"
	"unsafe"
)

// Tensor is a strided view, with DLPack's meaning: element [i0, i1, ...] is at element offset
// i0*Strides[0] + i1*Strides[1] + ... from the start of the memory (strides count elements, not
// bytes). A nil Strides means row-major contiguous. The memory is either a Go slice (the
// *Tensor constructors) or an address not managed by Go ([DeviceTensor]).
//
// The zero Tensor has no memory; passing it for a non-empty call gives [ErrNullPointer].
type Tensor struct {
	Dtype   Dtype
	Shape   []int64
	Strides []int64 // in elements; nil: row-major contiguous

	mem   []byte  // Go memory (nil for device memory or an empty slice)
	goMem bool    // the view is over a Go slice (possibly empty)
	addr  uintptr // device / foreign address when !goMem
}

// BF16Tensor views data (bfloat16 bit patterns) as a bf16 tensor of the given shape. The view
// starts at data[0]: slice data to start elsewhere (e.g. kv[dNope:] for the second half of
// each row of a [s, h, dNope+dV] buffer) and set strides with [Tensor.WithStrides].
func BF16Tensor(data []uint16, shape ...int64) Tensor { return goTensor(BF16, u16Bytes(data), shape) }

// FP16Tensor views data (IEEE half-precision bit patterns) as an fp16 tensor; see [BF16Tensor].
func FP16Tensor(data []uint16, shape ...int64) Tensor { return goTensor(FP16, u16Bytes(data), shape) }

// FP32Tensor views data as an fp32 tensor; see [BF16Tensor].
func FP32Tensor(data []float32, shape ...int64) Tensor {
	var b []byte
	if len(data) > 0 {
		b = unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), 4*len(data))
	}
	return goTensor(FP32, b, shape)
}

// FP8Tensor views data as a tensor of the FP8 format (E4M3FN, E5M2, E4M3FNUZ or E5M2FNUZ),
// typically an output; see [BF16Tensor].
func FP8Tensor(data []byte, format Dtype, shape ...int64) Tensor {
	return goTensor(format, data, shape)
}

// BytesTensor views raw bytes as a tensor of any dtype (e.g. bf16 data read from a file). The
// bytes must be aligned to the element size (else the call fails with [ErrAlignment]); the
// byte length need not be a multiple of it (the view is checked against whole elements).
func BytesTensor(data []byte, dtype Dtype, shape ...int64) Tensor {
	return goTensor(dtype, data, shape)
}

// DeviceTensor describes memory not managed by Go: a CUDA or HIP device allocation, or host
// memory from C (C.malloc, cudaMallocHost) for the reference backend. ptr is the address of
// element [0, ..., 0].
//
// Unsafe: the binding cannot check the view against an allocation, so, exactly as in C, the
// caller guarantees that every element of the view is valid memory of the kind the backend
// needs, for as long as the operation runs (GPU calls are asynchronous on [Args].Stream). Never
// pass the address of Go memory as a uintptr: the garbage collector does not know about it and
// the cgo rules forbid C from keeping it; use the slice constructors for Go memory.
func DeviceTensor(ptr uintptr, dtype Dtype, shape ...int64) Tensor {
	return Tensor{Dtype: dtype, Shape: append([]int64(nil), shape...), addr: ptr}
}

// WithStrides returns a copy of t with the given strides (in elements, one per dimension).
func (t Tensor) WithStrides(strides ...int64) Tensor {
	t.Strides = append([]int64(nil), strides...)
	return t
}

// IsGoMemory reports whether t views a Go slice (as opposed to a [DeviceTensor]).
func (t Tensor) IsGoMemory() bool { return t.goMem }

func goTensor(d Dtype, b []byte, shape []int64) Tensor {
	return Tensor{Dtype: d, Shape: append([]int64(nil), shape...), mem: b, goMem: true}
}

func u16Bytes(data []uint16) []byte {
	if len(data) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), 2*len(data))
}

// layout is a tensor checked and flattened for the C call.
type layout struct {
	ndim    int
	shape   [MaxRank]int64
	strides [MaxRank]int64
	goPtr   unsafe.Pointer // first byte of the Go slice (nil: not Go memory, or no bytes)
	addr    uintptr        // device address (not Go memory)
}

// check validates t for the C call and, for Go memory, proves that every element of the view
// lies inside the slice. name is the argument's C name ("k_nope", ...). Nothing here reads the
// memory.
func (t *Tensor) check(name string) (layout, *Error) {
	var l layout
	fail := func(st Status, format string, a ...interface{}) (layout, *Error) {
		return layout{}, &Error{Status: st, Message: name + ": " + fmt.Sprintf(format, a...)}
	}
	n := len(t.Shape)
	if n > MaxRank {
		return fail(ErrRank, "%d dimensions; at most %d are supported", n, MaxRank)
	}
	if t.Strides != nil && len(t.Strides) != n {
		return fail(ErrRank, "%d shape entries but %d strides", n, len(t.Strides))
	}
	l.ndim = n
	copy(l.shape[:], t.Shape)
	if t.Strides != nil {
		copy(l.strides[:], t.Strides)
	} else {
		// row-major contiguous
		acc := uint64(1)
		for i := n - 1; i >= 0; i-- {
			l.strides[i] = int64(acc)
			if i > 0 {
				hi, lo := bits.Mul64(acc, uint64(max64(t.Shape[i], 1)))
				if hi != 0 || lo > 1<<62 {
					return fail(ErrSizeOverflow, "contiguous strides of shape %v overflow 64 bits", t.Shape)
				}
				acc = lo
			}
		}
	}
	if !t.goMem {
		l.addr = t.addr
		return l, nil
	}

	// Go memory: bound the view by the slice before anything is passed to C.
	esz := t.Dtype.Size()
	if esz == 0 {
		return fail(ErrDtype, "dtype %v has no element size", t.Dtype)
	}
	empty := false
	for i := 0; i < n; i++ {
		if l.shape[i] < 0 {
			return fail(ErrShape, "negative extent %d in dim %d", l.shape[i], i)
		}
		if l.strides[i] < 0 {
			return fail(ErrStride, "negative stride %d in dim %d", l.strides[i], i)
		}
		if l.shape[i] == 0 {
			empty = true
		}
	}
	// elements needed from the start of the slice: 1 + sum (shape[i]-1)*strides[i]
	var needed uint64
	if !empty {
		needed = 1
		for i := 0; i < n; i++ {
			hi, p := bits.Mul64(uint64(l.shape[i]-1), uint64(l.strides[i]))
			var carry uint64
			needed, carry = bits.Add64(needed, p, 0)
			if hi != 0 || carry != 0 || needed > 1<<62 {
				return fail(ErrSizeOverflow, "shape %v with strides %v spans more than 2^62 elements", t.Shape, l.strides[:n])
			}
		}
	}
	have := uint64(len(t.mem) / esz)
	if needed > have {
		return fail(ErrShape, "the view (%v, shape %v, strides %v) needs %d elements but its Go slice holds %d",
			t.Dtype, t.Shape, l.strides[:n], needed, have)
	}
	if len(t.mem) > 0 {
		l.goPtr = unsafe.Pointer(&t.mem[0])
	}
	return l, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
