package mlakv_test

import (
	"errors"
	"fmt"

	"github.com/mlakv/mlakv/bindings/go/mlakv"
)

// Pack a DeepSeek-style layout: k_nope and v are the two halves of one bf16 [s, h, 256] buffer,
// k_pe holds one rope vector per token, and the outputs are e4m3fn.
func ExamplePackFP8() {
	const s, h, dNope, dRope, dV = 4, 2, 128, 64, 128
	const w = dNope + dV

	kv := make([]uint16, s*h*w) // bf16 bits: k_nope | v per (token, head)
	for i := range kv {
		kv[i] = 0x3F80 // 1.0
	}
	kPe := make([]uint16, s*dRope)
	for i := range kPe {
		kPe[i] = 0xC47A // -1000.0
	}
	kOut := make([]byte, s*h*(dNope+dRope))
	vOut := make([]byte, s*h*dV)

	a := mlakv.NewArgs() // multipliers 1, BackendAuto
	a.KNope = mlakv.BF16Tensor(kv, s, h, dNope).WithStrides(h*w, w, 1)
	a.V = mlakv.BF16Tensor(kv[dNope:], s, h, dV).WithStrides(h*w, w, 1)
	a.KPe = mlakv.BF16Tensor(kPe, s, dRope) // [s, 1, dRope] works too
	a.KOut = mlakv.FP8Tensor(kOut, mlakv.E4M3FN, s, h, dNope+dRope)
	a.VOut = mlakv.FP8Tensor(vOut, mlakv.E4M3FN, s, h, dV)
	a.VScaleInv = 2 // V is multiplied by 2 before rounding

	if err := mlakv.PackFP8(a); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("k_out[0,0,0] = 0x%02X (1.0)\n", kOut[0])
	fmt.Printf("k_out[0,0,%d] = 0x%02X (-1000 saturates to -448)\n", dNope, kOut[dNope])
	fmt.Printf("v_out[0,0,0] = 0x%02X (2.0)\n", vOut[0])
	// Output:
	// k_out[0,0,0] = 0x38 (1.0)
	// k_out[0,0,128] = 0xFE (-1000 saturates to -448)
	// v_out[0,0,0] = 0x40 (2.0)
}

// Errors carry the library's status and message; errors.Is tests the status.
func ExampleError() {
	a := mlakv.NewArgs()
	a.KNope = mlakv.BF16Tensor(make([]uint16, 2*16), 2, 1, 16)
	a.KPe = mlakv.BF16Tensor(make([]uint16, 3*8), 3, 8) // 3 tokens, but k_nope has 2
	a.V = mlakv.BF16Tensor(make([]uint16, 2*16), 2, 1, 16)
	a.KOut = mlakv.FP8Tensor(make([]byte, 2*24), mlakv.E4M3FN, 2, 1, 24)
	a.VOut = mlakv.FP8Tensor(make([]byte, 2*16), mlakv.E4M3FN, 2, 1, 16)

	err := mlakv.PackFP8(a)
	fmt.Println(errors.Is(err, mlakv.ErrShape))
	var e *mlakv.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status.String(), e.Op)
	}
	// Output:
	// true
	// MLAKV_ERR_SHAPE PackFP8
}

// A view that runs past the end of its slice is rejected before the library is called.
func ExampleBF16Tensor() {
	a := mlakv.NewArgs()
	a.KNope = mlakv.BF16Tensor(make([]uint16, 100), 2, 4, 16) // needs 128 elements
	a.KPe = mlakv.BF16Tensor(make([]uint16, 2*8), 2, 8)
	a.V = mlakv.BF16Tensor(make([]uint16, 128), 2, 4, 16)
	a.KOut = mlakv.FP8Tensor(make([]byte, 2*4*24), mlakv.E4M3FN, 2, 4, 24)
	a.VOut = mlakv.FP8Tensor(make([]byte, 128), mlakv.E4M3FN, 2, 4, 16)
	fmt.Println(mlakv.PackFP8(a))
	// Output:
	// mlakv.PackFP8: MLAKV_ERR_SHAPE: k_nope: the view (bf16, shape [2 4 16], strides [64 16 1]) needs 128 elements but its Go slice holds 100
}

// Device memory (here only sketched: d* are CUDA allocations made elsewhere, e.g. with
// cudaMalloc through cgo, and stream a cudaStream_t) is passed by address; the call is an
// asynchronous launch on the stream.
func ExampleDeviceTensor() {
	var dKV, dKPe, dKOut, dVOut, dScale, stream uintptr // from your CUDA code
	const s, h = 1024, 16
	if dKV == 0 {
		return // this example needs a GPU
	}
	a := mlakv.NewArgs()
	a.Backend = mlakv.BackendCUDA
	a.Stream = stream
	a.KNope = mlakv.DeviceTensor(dKV, mlakv.BF16, s, h, 128).WithStrides(h*256, 256, 1)
	a.V = mlakv.DeviceTensor(dKV+2*128, mlakv.BF16, s, h, 128).WithStrides(h*256, 256, 1)
	a.KPe = mlakv.DeviceTensor(dKPe, mlakv.BF16, s, 64)
	a.KOut = mlakv.DeviceTensor(dKOut, mlakv.E4M3FN, s, h, 192)
	a.VOut = mlakv.DeviceTensor(dVOut, mlakv.E4M3FN, s, h, 128)
	a.KScaleInvPtr = dScale // read by the kernel when it runs (CUDA-graph friendly)
	if err := mlakv.PackFP8(a); err != nil {
		fmt.Println(err)
	}
}

func ExampleDispatchTable() {
	table, err := mlakv.DispatchTable(mlakv.BackendReference)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(table) // one row per line: conditions, then the kernel variant and its configuration
}

// Calibrate per-head scales with amax outputs (mlakv 0.2): zero the amax buffers, run a few
// batches, take scale = amax / fp8 max per head, then pack with the per-head multipliers
// 1 / scale.
func Example_calibration() {
	const s, h, dNope, dRope, dV = 4, 2, 16, 8, 16
	const fp8Max = 448 // e4m3fn
	batch := func(gain float32) (kNope, kPe, v []float32) {
		kNope, v = make([]float32, s*h*dNope), make([]float32, s*h*dV)
		for i := range kNope {
			head := i / dNope % h
			kNope[i] = float32(i%7-3) * gain * float32(head+1) // head j: |x| <= 3 * gain * (j+1)
			v[i] = kNope[i] / 4
		}
		kPe = make([]float32, s*dRope)
		for i := range kPe {
			kPe[i] = 0.5
		}
		return kNope, kPe, v
	}
	kOut, vOut := make([]byte, s*h*(dNope+dRope)), make([]byte, s*h*dV)
	args := func(kNope, kPe, v []float32) *mlakv.Args {
		a := mlakv.NewArgs()
		a.KNope = mlakv.FP32Tensor(kNope, s, h, dNope)
		a.KPe = mlakv.FP32Tensor(kPe, s, dRope)
		a.V = mlakv.FP32Tensor(v, s, h, dV)
		a.KOut = mlakv.FP8Tensor(kOut, mlakv.E4M3FN, s, h, dNope+dRope)
		a.VOut = mlakv.FP8Tensor(vOut, mlakv.E4M3FN, s, h, dV)
		return a
	}

	kAmax, vAmax := make([]float32, h), make([]float32, h) // 1. zeroed once, one float per head
	ones := []float32{1, 1}
	for _, gain := range []float32{1, 2} { // 2. a few batches
		a := args(batch(gain))
		a.KScaleInvPerHead, a.VScaleInvPerHead = ones, ones
		a.KAmax, a.VAmax = kAmax, vAmax // max |x| per head accumulates here
		if err := mlakv.PackFP8(a); err != nil {
			fmt.Println(err)
			return
		}
	}
	kMul, vMul := make([]float32, h), make([]float32, h)
	for j := 0; j < h; j++ { // 3. scale = amax / fp8 max; the kernel takes 1 / scale (guard amax = 0 in real code)
		kMul[j] = fp8Max / kAmax[j]
		vMul[j] = fp8Max / vAmax[j]
	}
	a := args(batch(1)) // 4. pack with the per-head multipliers
	a.KScaleInvPerHead, a.VScaleInvPerHead = kMul, vMul
	if err := mlakv.PackFP8(a); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("k_amax", kAmax, "v_amax", vAmax)
	fmt.Printf("k_out[0,0,0] = 0x%02X (-3 * 448/6 = -224), k_out[0,1,4] = 0x%02X (6 * 448/12 = 224)\n",
		kOut[0], kOut[dNope+dRope+4])
	// Output:
	// k_amax [6 12] v_amax [1.5 3]
	// k_out[0,0,0] = 0xF6 (-3 * 448/6 = -224), k_out[0,1,4] = 0x76 (6 * 448/12 = 224)
}
