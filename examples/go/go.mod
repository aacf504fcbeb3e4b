module github.com/mlakv/mlakv/examples/go

go 1.19

require github.com/mlakv/mlakv/bindings/go v0.0.0

// The binding is used from this checkout; a program outside the repository points the same
// replace directive at its copy of bindings/go (see bindings/go/README.md).
replace github.com/mlakv/mlakv/bindings/go => ../../bindings/go
