module github.com/mlakv/mlakv/bindings/go

go 1.19
