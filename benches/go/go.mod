module gocontext/benches/go

go 1.23
