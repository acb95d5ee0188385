//! The generated `echo` gRPC code, for the tests in `tests/`.

#![allow(missing_docs)]

pub mod echo {
    tonic::include_proto!("echo");
}
