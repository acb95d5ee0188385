//! gocontext: Go's `context` package as a lock-free cancellation tree.
//! (Skeleton: the engine lands in the following commits.)
#![allow(dead_code)]

mod sync;
