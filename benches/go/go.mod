module gocontext/benches/go

go 1.21
