//! Tower layers that carry a request's context across the wire (feature
//! `tower`).
//!
//! A server gets each request's context from [`ServerLayer`]: a child of
//! the server's root (its shutdown context) whose deadline is the caller's
//! `grpc-timeout`, capped by a configured maximum. The context is in the
//! request's extensions and is the [current](crate::Context::current) one
//! while the inner service runs, so clients deep inside a handler find it
//! without being handed it. It is cancelled, with a cause saying why
//! ([`RequestEnded`]), when the response has been sent (its body ended,
//! as a Go handler's context ends when `ServeHTTP` returns) and when the
//! caller goes away first (the response future or body is dropped), so
//! everything the request started stops with it. A streaming body is
//! produced in the request's context (see [`ResponseBody`]).
//!
//! An outgoing client gets [`ClientLayer`]: it takes the context from the
//! request's extensions (or the current one), fails fast if it is done,
//! sends its time left as `grpc-timeout`, and abandons the call with the
//! context's error when the context is done first.
//!
//! Both are ordinary `tower_layer::Layer`s over `http::Request`s, so they
//! drop into hyper, axum and tonic (`Server::builder().layer(..)`, a
//! channel's `ServiceBuilder`). `poll_ready` passes through; errors become
//! `Box<dyn Error + Send + Sync>`, tower's convention, with the context's
//! [`Error`](crate::Error) inside when the context ended the call.
//!
//! A request is gRPC when its `content-type` starts with
//! `application/grpc`; errors are then answered gRPC's way (HTTP 200 with
//! `grpc-status` and `grpc-message`), otherwise with an HTTP status:
//!
//! | why | HTTP | gRPC |
//! |---|---|---|
//! | malformed `grpc-timeout` | 400 Bad Request | `INVALID_ARGUMENT` (3) |
//! | deadline exceeded | 504 Gateway Timeout | `DEADLINE_EXCEEDED` (4) |
//! | cancelled (server shutting down) | 503 Service Unavailable | `CANCELLED` (1) |

mod body;
mod client;
mod end;
mod response;
mod server;

pub use body::ResponseBody;
pub use client::{Client, ClientFuture, ClientLayer};
pub use end::RequestEnded;
pub use server::{Server, ServerFuture, ServerLayer};

/// `grpc-timeout` as a header name, built at compile time (a `&str` name
/// is parsed on every lookup).
const GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static(crate::wire::GRPC_TIMEOUT);

/// The error type of both layers' services: tower's boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
