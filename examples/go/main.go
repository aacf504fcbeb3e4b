// Command mlakv-go-example packs one DeepSeek-V3-shaped chunk with the Go binding of mlakv:
// k_nope and v are the two halves of one bf16 [s, h, 256] buffer, k_pe is [s, 64], and K and V
// are quantized to e4m3fn with per-tensor scales. It prints the library, the plan and a few
// output bytes.
//
//	export PKG_CONFIG_PATH=<prefix>/lib/pkgconfig LD_LIBRARY_PATH=<prefix>/lib
//	cd examples/go && go run . -s 1024 -h 16
package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/mlakv/mlakv/bindings/go/mlakv"
)

// bf16 rounds f to bfloat16 bits (nearest even; inputs here are finite).
func bf16(f float32) uint16 {
	u := math.Float32bits(f)
	return uint16((u + 0x7FFF + (u>>16)&1) >> 16)
}

func main() {
	s := flag.Int("s", 1024, "tokens in the chunk")
	h := flag.Int("h", 16, "heads")
	flag.Parse()
	const dNope, dRope, dV = 128, 64, 128
	const w = dNope + dV
	S, H := int64(*s), int64(*h)

	fmt.Printf("mlakv %s (Go binding built against header %d)\n", mlakv.VersionString(), mlakv.HeaderVersion)
	backends, err := mlakv.Backends()
	if err != nil {
		fail(err)
	}
	for _, b := range backends {
		fmt.Printf("  backend %-9s compiled=%-5v usable=%-5v %s\n", b.Name, b.Compiled, b.Usable, b.Detail)
	}

	kv := make([]uint16, *s**h*w)
	for i := range kv {
		kv[i] = bf16(float32(math.Sin(float64(i) * 0.001)))
	}
	kPe := make([]uint16, *s*dRope)
	for i := range kPe {
		kPe[i] = bf16(float32(math.Cos(float64(i)*0.01)) * 4)
	}
	kOut := make([]byte, *s**h*(dNope+dRope))
	vOut := make([]byte, *s**h*dV)

	a := mlakv.NewArgs()
	a.KNope = mlakv.BF16Tensor(kv, S, H, dNope).WithStrides(H*w, w, 1)
	a.V = mlakv.BF16Tensor(kv[dNope:], S, H, dV).WithStrides(H*w, w, 1)
	a.KPe = mlakv.BF16Tensor(kPe, S, dRope)
	a.KOut = mlakv.FP8Tensor(kOut, mlakv.E4M3FN, S, H, dNope+dRope)
	a.VOut = mlakv.FP8Tensor(vOut, mlakv.E4M3FN, S, H, dV)
	a.KScaleInv = 1 / 0.0375 // multipliers: 1 / scale
	a.VScaleInv = 1 / 0.021

	plan, err := mlakv.Plan(a)
	if err != nil {
		fail(err)
	}
	fmt.Println("plan:", plan)

	start := time.Now()
	if err := mlakv.PackFP8(a); err != nil {
		fail(err)
	}
	fmt.Printf("packed s=%d h=%d in %v\n", *s, *h, time.Since(start).Round(time.Microsecond))
	fmt.Printf("k_out[0,0,:4] = % X   k_out[0,0,%d:%d] = % X   v_out[0,0,:4] = % X\n",
		kOut[:4], dNope, dNope+4, kOut[dNope:dNope+4], vOut[:4])

	// Errors carry the status and the library's message.
	a.VOut = mlakv.FP8Tensor(vOut, mlakv.E4M3FN, S, H, dV-1)
	err = mlakv.PackFP8(a)
	fmt.Printf("a wrong v_out shape: errors.Is(err, mlakv.ErrShape) = %v\n  %v\n", errors.Is(err, mlakv.ErrShape), err)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
