package mlakv

/*
#cgo pkg-config: mlakv
#include <mlakv/mlakv.h>
#include <stdlib.h>
*/
import "C"

import (
	"fmt"
	"runtime"
	"strings"
	"unsafe"
)

// HeaderVersion is MLAKV_VERSION of the header this package was compiled against
// (MAJOR*10000 + MINOR*100 + PATCH). [Version] gives the version of the library linked at run time.
const HeaderVersion = int(C.MLAKV_VERSION)

// MaxRank is the largest number of dimensions a [Tensor] can have (MLAKV_MAX_RANK).
const MaxRank = 4

// Dtype is an element type (mlakv_dtype).
type Dtype int32

// Element types. Inputs are BF16, FP16 or FP32; outputs are one of the four FP8 formats.
const (
	DtypeInvalid Dtype = 0 // MLAKV_DTYPE_INVALID
	BF16         Dtype = 1 // bfloat16, as uint16 bit patterns
	FP16         Dtype = 2 // IEEE half precision, as uint16 bit patterns
	FP32         Dtype = 3 // IEEE single precision
	E4M3FN       Dtype = 4 // OCP e4m3fn: max 448, NaN 0x7F, -0 = 0x80
	E5M2         Dtype = 5 // OCP e5m2: max 57344, NaN 0x7F, -0 = 0x80
	E4M3FNUZ     Dtype = 6 // AMD gfx942 e4m3fnuz: max 240, NaN 0x80, no negative zero
	E5M2FNUZ     Dtype = 7 // AMD gfx942 e5m2fnuz: max 57344, NaN 0x80, no negative zero
)

var dtypeNames = [...]string{"invalid", "bf16", "fp16", "fp32", "e4m3fn", "e5m2", "e4m3fnuz", "e5m2fnuz"}

// String returns the short name of the dtype ("bf16", "e4m3fn", ...).
func (d Dtype) String() string {
	if d >= 0 && int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("Dtype(%d)", int32(d))
}

// Size returns the size of one element in bytes, or 0 for an unknown dtype.
func (d Dtype) Size() int {
	switch d {
	case BF16, FP16:
		return 2
	case FP32:
		return 4
	case E4M3FN, E5M2, E4M3FNUZ, E5M2FNUZ:
		return 1
	}
	return 0
}

// IsFP8 reports whether d is one of the four FP8 output formats.
func (d Dtype) IsFP8() bool { return d >= E4M3FN && d <= E5M2FNUZ }

// Backend names a backend (mlakv_backend).
type Backend int32

// Backends. BackendAuto picks the first usable backend that can reach the memory.
const (
	BackendAuto      Backend = 0 // MLAKV_BACKEND_AUTO
	BackendReference Backend = 1 // MLAKV_BACKEND_REFERENCE: Kokkos on the host, the oracle and CPU fallback
	BackendCUDA      Backend = 2 // MLAKV_BACKEND_CUDA
	BackendHIP       Backend = 3 // MLAKV_BACKEND_HIP
)

// String returns "auto", "reference", "cuda" or "hip".
func (b Backend) String() string {
	switch b {
	case BackendAuto:
		return "auto"
	case BackendReference:
		return "reference"
	case BackendCUDA:
		return "cuda"
	case BackendHIP:
		return "hip"
	}
	return fmt.Sprintf("Backend(%d)", int32(b))
}

// PDLMode selects programmatic dependent launch on CUDA sm_90+ (mlakv_pdl_mode).
type PDLMode int32

// PDL modes.
const (
	PDLAuto PDLMode = 0 // MLAKV_PDL_AUTO: on where the device supports it
	PDLOn   PDLMode = 1 // MLAKV_PDL_ON: on where the device supports it; ignored elsewhere
	PDLOff  PDLMode = 2 // MLAKV_PDL_OFF
)

// ScaleGranularity says how many multipliers a call has (mlakv_scale_granularity, since mlakv 0.2).
type ScaleGranularity int32

// Scale granularities.
const (
	// ScalePerTensor (MLAKV_SCALE_PER_TENSOR, the zero value and default): one multiplier for K
	// and one for V.
	ScalePerTensor ScaleGranularity = 0
	// ScalePerHead (MLAKV_SCALE_PER_HEAD): h multipliers for K and h for V, read from memory
	// (head j of k_out uses K multiplier j, head j of v_out V multiplier j); amax outputs then
	// hold h floats each.
	ScalePerHead ScaleGranularity = 1
)

// String returns "per-tensor", "per-head" or "ScaleGranularity(n)".
func (g ScaleGranularity) String() string {
	switch g {
	case ScalePerTensor:
		return "per-tensor"
	case ScalePerHead:
		return "per-head"
	}
	return fmt.Sprintf("ScaleGranularity(%d)", int32(g))
}

// Flags are the MLAKV_FLAG_* bits of [Args].Flags.
type Flags uint32

// FlagTrustPointers skips the GPU backends' check that every pointer is device-accessible
// (MLAKV_FLAG_TRUST_POINTERS). It has no effect on calls with Go memory, which always run on
// the reference backend.
const FlagTrustPointers Flags = 0x1

// Status is a status code of the library (mlakv_status). Every Status other than OK is also an
// error value, so errors.Is(err, mlakv.ErrShape) tests an error returned by this package for
// that code.
type Status int32

// Status codes, with the values of the C header.
const (
	OK                    Status = 0  // MLAKV_OK
	ErrNullPointer        Status = 1  // a required pointer is NULL
	ErrStructSize         Status = 2  // struct_size too small, or unknown trailing bytes set
	ErrDtype              Status = 3  // unsupported or mismatched dtype
	ErrRank               Status = 4  // a tensor has the wrong number of dimensions
	ErrShape              Status = 5  // shapes disagree with each other (or with a Go slice's length)
	ErrStride             Status = 6  // negative stride, inner stride != 1, self-aliasing output
	ErrAlignment          Status = 7  // a pointer is not aligned to its element size
	ErrOverlap            Status = 8  // an output (k_out, v_out, an amax array) shares a byte with another operand
	ErrSizeOverflow       Status = 9  // a size or offset does not fit in 64 bits / the address space
	ErrUnsupportedDims    Status = 10 // a head dimension is zero or too large
	ErrInvalidArgument    Status = 11 // an enum value or flag is out of range
	ErrNoSuchBackend      Status = 12 // the backend code names no backend of this library
	ErrBackendUnavailable Status = 13 // the backend exists but was not built or cannot run here
	ErrDevice             Status = 14 // bad device ordinal or device/runtime failure
	ErrLaunch             Status = 15 // the kernel launch failed
	ErrBufferTooSmall     Status = 16 // a text buffer is too small
	ErrTableParse         Status = 17 // a dispatch table text does not parse
	ErrMemorySpace        Status = 18 // a pointer is not accessible from the chosen backend
	ErrInternal           Status = 19 // a bug in mlakv; please report it
	ErrNoTableRow         Status = 20 // no row of the backend's dispatch table can run the call
	ErrTableDevice        Status = 21 // a table file was measured on a device this backend does not have
	// ErrOverlapUndecided: an output and another operand interleave in a way mlakv cannot decide
	// (more than two large, unrelated strides): not proven disjoint, so refused; no overlap was
	// found.
	ErrOverlapUndecided Status = 22
)

var statusText = [...]struct{ name, text string }{
	{"MLAKV_OK", "success"},
	{"MLAKV_ERR_NULL_POINTER", "a required pointer is NULL"},
	{"MLAKV_ERR_STRUCT_SIZE", "struct_size too small, or unknown trailing bytes set"},
	{"MLAKV_ERR_DTYPE", "unsupported or mismatched dtype"},
	{"MLAKV_ERR_RANK", "a tensor has the wrong number of dimensions"},
	{"MLAKV_ERR_SHAPE", "shapes disagree"},
	{"MLAKV_ERR_STRIDE", "unsupported or aliasing strides"},
	{"MLAKV_ERR_ALIGNMENT", "a pointer is not aligned to its element size"},
	{"MLAKV_ERR_OVERLAP", "an output overlaps another tensor"},
	{"MLAKV_ERR_SIZE_OVERFLOW", "a size or offset overflows 64 bits or the address space"},
	{"MLAKV_ERR_UNSUPPORTED_DIMS", "a head dimension is zero or too large"},
	{"MLAKV_ERR_INVALID_ARGUMENT", "an enum value or flag is out of range"},
	{"MLAKV_ERR_NO_SUCH_BACKEND", "no such backend"},
	{"MLAKV_ERR_BACKEND_UNAVAILABLE", "backend not built or not usable here"},
	{"MLAKV_ERR_DEVICE", "bad device ordinal or device runtime failure"},
	{"MLAKV_ERR_LAUNCH", "kernel launch failed"},
	{"MLAKV_ERR_BUFFER_TOO_SMALL", "text buffer too small"},
	{"MLAKV_ERR_TABLE_PARSE", "dispatch table text does not parse"},
	{"MLAKV_ERR_MEMORY_SPACE", "memory not reachable from the backend"},
	{"MLAKV_ERR_INTERNAL", "internal error in mlakv; please report it"},
	{"MLAKV_ERR_NO_TABLE_ROW", "no dispatch table row can run this call"},
	{"MLAKV_ERR_TABLE_DEVICE", "the table file was measured on another device"},
	{"MLAKV_ERR_OVERLAP_UNDECIDED", "could not decide whether an output overlaps another operand"},
}

// String returns the C name of the status ("MLAKV_ERR_SHAPE"), or "MLAKV_STATUS(n)" for a
// code this binding does not know (one appended by a newer library).
func (s Status) String() string {
	if s >= 0 && int(s) < len(statusText) {
		return statusText[s].name
	}
	return fmt.Sprintf("MLAKV_STATUS(%d)", int32(s))
}

// Error returns the name and a short description ("MLAKV_ERR_SHAPE: shapes disagree").
func (s Status) Error() string {
	if s >= 0 && int(s) < len(statusText) {
		return statusText[s].name + ": " + statusText[s].text
	}
	return s.String() + ": unknown status code"
}

// Error is the error returned by every function of this package. It wraps its Status:
// errors.Is(err, mlakv.ErrOverlap) is true for an *Error with Status ErrOverlap.
type Error struct {
	Op      string // the Go function that failed, e.g. "PackFP8"
	Status  Status // the library's status code (or the binding's, for checks done in Go)
	Message string // which argument and why: mlakv_last_error() of the failing call
}

// Error formats the error as "mlakv.Op: MLAKV_ERR_...: message".
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Status.Error()
	} else {
		msg = e.Status.String() + ": " + msg
	}
	if e.Op == "" {
		return "mlakv: " + msg
	}
	return "mlakv." + e.Op + ": " + msg
}

// Unwrap returns the Status, so that errors.Is and errors.As see it.
func (e *Error) Unwrap() error { return e.Status }

// callErr turns a status into nil or an *Error; msg is the library's message for that call.
func callErr(op string, st C.mlakv_status, msg string) error {
	if st == C.MLAKV_OK {
		return nil
	}
	return &Error{Op: op, Status: Status(st), Message: msg}
}

// lastError copies mlakv_last_error(). It must run on the OS thread that made the failing call:
// callers hold runtime.LockOSThread around both.
func lastError() string { return C.GoString(C.mlakv_last_error()) }

// Version returns MLAKV_VERSION of the library linked at run time (MAJOR*10000 + MINOR*100 + PATCH).
func Version() int { return int(C.mlakv_version()) }

// VersionString returns the linked library's version and built backends, e.g. "0.2.0 (reference, cuda)".
func VersionString() string { return C.GoString(C.mlakv_version_string()) }

// BackendInfo describes one backend of the linked library.
type BackendInfo struct {
	Backend     Backend
	Name        string // "reference", "cuda", "hip"
	Compiled    bool   // the library was built with it
	Usable      bool   // it can run here now (runtime and a device present)
	DeviceCount int    // devices it sees (1 for the reference backend)
	Detail      string // why it is not usable, or what it found
}

// Backends returns every backend the library knows, compiled or not, in priority order
// (BackendAuto picks the first usable one that can reach the memory).
func Backends() ([]BackendInfo, error) {
	n := int(C.mlakv_backend_count())
	out := make([]BackendInfo, 0, n)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i := 0; i < n; i++ {
		var info C.mlakv_backend_info // Go memory; the library fills it with pointers to static C strings
		info.struct_size = C.size_t(unsafe.Sizeof(info))
		if st := C.mlakv_backend_get_info(C.int32_t(i), &info); st != C.MLAKV_OK {
			return nil, callErr("Backends", st, lastError())
		}
		out = append(out, BackendInfo{
			Backend:     Backend(info.backend),
			Name:        goStringOrEmpty(info.name),
			Compiled:    info.compiled != 0,
			Usable:      info.usable != 0,
			DeviceCount: int(info.device_count),
			Detail:      goStringOrEmpty(info.detail),
		})
	}
	return out, nil
}

func goStringOrEmpty(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

// textCall runs one of the library's "fill a text buffer" functions, growing the buffer as the
// library asks (the text can change between two calls, e.g. a concurrent SetDispatchTable).
// The buffer is Go memory without Go pointers, passed for the call only. The caller holds
// runtime.LockOSThread.
func textCall(f func(buf *C.char, size C.size_t, needed *C.size_t) C.mlakv_status) (string, C.mlakv_status) {
	size := 1024
	for {
		buf := make([]byte, size)
		var needed C.size_t
		st := f((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &needed)
		if st == C.MLAKV_ERR_BUFFER_TOO_SMALL && int(needed) > size {
			size = int(needed)
			continue
		}
		if st != C.MLAKV_OK {
			return "", st
		}
		n := 0
		for n < len(buf) && buf[n] != 0 {
			n++
		}
		return string(buf[:n]), st
	}
}

// DispatchTable returns the backend's hybrid dispatch table as text, one row per line (the
// first row whose conditions hold picks the kernel variant and launch configuration).
func DispatchTable(b Backend) (string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	text, st := textCall(func(buf *C.char, size C.size_t, needed *C.size_t) C.mlakv_status {
		return C.mlakv_dispatch_table_get(C.mlakv_backend(b), buf, size, needed)
	})
	if st != C.MLAKV_OK {
		return "", callErr("DispatchTable", st, lastError())
	}
	return text, nil
}

// SetDispatchTable replaces the backend's dispatch table (every arch the text covers) with rows
// parsed from text in the format DispatchTable returns. On a parse error ([ErrTableParse]) the
// old table stays and the error's Message names the line. The table is process-wide.
func SetDispatchTable(b Backend, text string) error {
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.mlakv_dispatch_table_set(C.mlakv_backend(b), ctext)
	return callErr("SetDispatchTable", st, lastErrorIf(st))
}

// ResetDispatchTable restores the backend's built-in dispatch table (and forgets every device's
// loaded table file).
func ResetDispatchTable(b Backend) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.mlakv_dispatch_table_reset(C.mlakv_backend(b))
	return callErr("ResetDispatchTable", st, lastErrorIf(st))
}

// LoadDispatchTable loads a per-device table file written by mlakv-tune (its header names the
// device it was measured on) and applies it to every device of this process that matches; its
// rows are tried first, then the backend's table. GPU backends only: the reference backend has
// no per-device tables ([ErrInvalidArgument]). A malformed file is [ErrTableParse], a file for
// another device [ErrTableDevice]; either way nothing changes. [SetDispatchTable] and
// [ResetDispatchTable] forget loaded tables.
func LoadDispatchTable(b Backend, path string) error {
	if i := strings.IndexByte(path, 0); i >= 0 {
		return &Error{Op: "LoadDispatchTable", Status: ErrInvalidArgument,
			Message: fmt.Sprintf("the path holds a NUL byte at offset %d", i)}
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.mlakv_dispatch_table_load(C.mlakv_backend(b), cpath)
	return callErr("LoadDispatchTable", st, lastErrorIf(st))
}

func lastErrorIf(st C.mlakv_status) string {
	if st == C.MLAKV_OK {
		return ""
	}
	return lastError()
}

// Compile-time checks that the Go constants mirror the header: a constant index out of range
// (any difference other than zero) does not compile.
func _() {
	var x [1]struct{}
	_ = x[int(C.MLAKV_MAX_RANK)-MaxRank]
	_ = x[int(C.MLAKV_DTYPE_INVALID)-int(DtypeInvalid)]
	_ = x[int(C.MLAKV_DTYPE_BF16)-int(BF16)]
	_ = x[int(C.MLAKV_DTYPE_FP16)-int(FP16)]
	_ = x[int(C.MLAKV_DTYPE_FP32)-int(FP32)]
	_ = x[int(C.MLAKV_DTYPE_E4M3FN)-int(E4M3FN)]
	_ = x[int(C.MLAKV_DTYPE_E5M2)-int(E5M2)]
	_ = x[int(C.MLAKV_DTYPE_E4M3FNUZ)-int(E4M3FNUZ)]
	_ = x[int(C.MLAKV_DTYPE_E5M2FNUZ)-int(E5M2FNUZ)]
	_ = x[int(C.MLAKV_BACKEND_AUTO)-int(BackendAuto)]
	_ = x[int(C.MLAKV_BACKEND_REFERENCE)-int(BackendReference)]
	_ = x[int(C.MLAKV_BACKEND_CUDA)-int(BackendCUDA)]
	_ = x[int(C.MLAKV_BACKEND_HIP)-int(BackendHIP)]
	_ = x[int(C.MLAKV_PDL_AUTO)-int(PDLAuto)]
	_ = x[int(C.MLAKV_PDL_ON)-int(PDLOn)]
	_ = x[int(C.MLAKV_PDL_OFF)-int(PDLOff)]
	_ = x[int(C.MLAKV_FLAG_TRUST_POINTERS)-int(FlagTrustPointers)]
	_ = x[int(C.MLAKV_OK)-int(OK)]
	_ = x[int(C.MLAKV_ERR_NULL_POINTER)-int(ErrNullPointer)]
	_ = x[int(C.MLAKV_ERR_STRUCT_SIZE)-int(ErrStructSize)]
	_ = x[int(C.MLAKV_ERR_DTYPE)-int(ErrDtype)]
	_ = x[int(C.MLAKV_ERR_RANK)-int(ErrRank)]
	_ = x[int(C.MLAKV_ERR_SHAPE)-int(ErrShape)]
	_ = x[int(C.MLAKV_ERR_STRIDE)-int(ErrStride)]
	_ = x[int(C.MLAKV_ERR_ALIGNMENT)-int(ErrAlignment)]
	_ = x[int(C.MLAKV_ERR_OVERLAP)-int(ErrOverlap)]
	_ = x[int(C.MLAKV_ERR_SIZE_OVERFLOW)-int(ErrSizeOverflow)]
	_ = x[int(C.MLAKV_ERR_UNSUPPORTED_DIMS)-int(ErrUnsupportedDims)]
	_ = x[int(C.MLAKV_ERR_INVALID_ARGUMENT)-int(ErrInvalidArgument)]
	_ = x[int(C.MLAKV_ERR_NO_SUCH_BACKEND)-int(ErrNoSuchBackend)]
	_ = x[int(C.MLAKV_ERR_BACKEND_UNAVAILABLE)-int(ErrBackendUnavailable)]
	_ = x[int(C.MLAKV_ERR_DEVICE)-int(ErrDevice)]
	_ = x[int(C.MLAKV_ERR_LAUNCH)-int(ErrLaunch)]
	_ = x[int(C.MLAKV_ERR_BUFFER_TOO_SMALL)-int(ErrBufferTooSmall)]
	_ = x[int(C.MLAKV_ERR_TABLE_PARSE)-int(ErrTableParse)]
	_ = x[int(C.MLAKV_ERR_MEMORY_SPACE)-int(ErrMemorySpace)]
	_ = x[int(C.MLAKV_ERR_INTERNAL)-int(ErrInternal)]
	_ = x[int(C.MLAKV_ERR_NO_TABLE_ROW)-int(ErrNoTableRow)]
	_ = x[int(C.MLAKV_ERR_TABLE_DEVICE)-int(ErrTableDevice)]
	_ = x[int(C.MLAKV_ERR_OVERLAP_UNDECIDED)-int(ErrOverlapUndecided)]
	_ = x[len(statusText)-1-int(ErrOverlapUndecided)] // a name for every status
	_ = x[int(C.MLAKV_SCALE_PER_TENSOR)-int(ScalePerTensor)]
	_ = x[int(C.MLAKV_SCALE_PER_HEAD)-int(ScalePerHead)]
	_ = x[HeaderVersion-200] // written against mlakv 0.2.0

	// mlakv_pack_args as cgo sees it: the 0.1 layout ends at MLAKV_PACK_ARGS_SIZE_0_1 (456),
	// where the fields appended by 0.2 start, in the header's order; the helper in pack.go
	// passes sizeof(mlakv_pack_args) = 480 to mlakv_pack_args_init_sized.
	var a C.mlakv_pack_args
	_ = x[int(unsafe.Offsetof(a.scale_granularity))-int(C.MLAKV_PACK_ARGS_SIZE_0_1)]
	_ = x[int(unsafe.Offsetof(a.flags))+4-int(C.MLAKV_PACK_ARGS_SIZE_0_1)]
	_ = x[int(unsafe.Offsetof(a.reserved))-460]
	_ = x[int(unsafe.Offsetof(a.k_amax))-464]
	_ = x[int(unsafe.Offsetof(a.v_amax))-472]
	_ = x[int(unsafe.Sizeof(a))-480]
	_ = x[int(unsafe.Sizeof(a.scale_granularity))-4]
	_ = x[int(unsafe.Sizeof(a.k_amax))-8]
}
