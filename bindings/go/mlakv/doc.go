// Package mlakv is the Go binding of mlakv, a C library with one operation of MLA
// (multi-head latent attention) chunked prefill: concatenate k_nope [s, h, D_nope] with the
// per-token k_pe [s, D_rope] broadcast to every head, and quantize the result and
// v [s, h, D_v] to FP8 (e4m3fn, e5m2, e4m3fnuz or e5m2fnuz), all in one pass.
//
//	k_out[t, j, :D_nope] = Q(k_nope[t, j, :] * KScaleInv)
//	k_out[t, j, D_nope:] = Q(k_pe[t, :] * KScaleInv)
//	v_out[t, j, :]       = Q(v[t, j, :] * VScaleInv)
//
// Q widens the input (bf16, fp16 or fp32) to fp32 exactly, multiplies once in fp32 with
// round-to-nearest-even, and rounds the product to the FP8 format with round-to-nearest-even
// and gradual underflow, saturating to ±max finite (infinities included); NaN becomes the
// format's NaN. Every backend gives identical bytes.
//
// # Per-head scales and amax (mlakv 0.2)
//
// [Args].ScaleGranularity = [ScalePerHead] (or setting [Args].KScaleInvPerHead and
// [Args].VScaleInvPerHead, h multipliers each) quantizes head j of k_out with K multiplier j and
// head j of v_out with V multiplier j. [Args].KAmax / [Args].VAmax (Go memory) or
// [Args].KAmaxPtr / [Args].VAmaxPtr (device memory) receive amax = max(amax, max |x|) of the
// inputs before scaling, per tensor (1 float) or per head (h floats), for calibration: zero them,
// run a few batches, take scale = amax / fp8 max, and pack with 1/scale.
//
// # Building
//
// The package uses cgo and finds the installed library with pkg-config (#cgo pkg-config:
// mlakv). Point PKG_CONFIG_PATH at <prefix>/lib/pkgconfig and, at run time, LD_LIBRARY_PATH at
// <prefix>/lib (unless the prefix is a system library directory). CGO_ENABLED must be 1.
//
// # Memory
//
// Tensors over Go memory are made with [BF16Tensor], [FP16Tensor], [FP32Tensor], [FP8Tensor]
// and [BytesTensor]. Before any call, the binding checks that every view lies inside its slice
// (a view running past the end is an [ErrShape] error, never a memory access). Go memory is
// only ever read and written by the reference (host) backend, synchronously, during the call:
// the library keeps no pointer to it after [PackFP8] returns, as the cgo rules require. A call
// with Go memory and [BackendAuto] therefore runs on [BackendReference]; asking for a GPU
// backend with Go memory is an [ErrMemorySpace] error.
//
// Device memory (CUDA or HIP allocations, or any memory not managed by Go, such as C.malloc'd
// host memory) is described with [DeviceTensor] and an address as a uintptr. The binding
// cannot check such views; as in C, they must be valid for the whole (possibly asynchronous)
// operation.
//
// # Errors
//
// Every failing call returns an *[Error] carrying the library's [Status] and the message of
// mlakv_last_error() (or the binding's own message for checks done in Go). Error unwraps to
// its Status, and every Status is an error value, so
//
//	if errors.Is(err, mlakv.ErrShape) { ... }
//
// tests for one status code, and errors.As(err, &e) with e *mlakv.Error gives the details.
//
// # Concurrency
//
// All functions are safe for concurrent use. Dispatch tables ([SetDispatchTable]) are
// process-wide state of the library.
package mlakv
