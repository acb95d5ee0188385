//! The responses the server layer answers with itself: a rejected
//! `grpc-timeout`, and a request whose context ended first.

use crate::wire::TimeoutError;
use crate::Error;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

/// gRPC status codes used here (the gRPC spec's numbering).
const CANCELLED: &str = "1";
const INVALID_ARGUMENT: &str = "3";
const DEADLINE_EXCEEDED: &str = "4";

/// True when the request speaks gRPC.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The answer to a request whose `grpc-timeout` did not decode.
pub(crate) fn bad_timeout<B: Default>(grpc: bool, err: TimeoutError) -> Response<B> {
    if grpc {
        grpc_error(INVALID_ARGUMENT, &err.to_string())
    } else {
        plain(StatusCode::BAD_REQUEST)
    }
}

/// The answer to a request whose context ended before its response.
pub(crate) fn context_ended<B: Default>(grpc: bool, err: Error) -> Response<B> {
    match (grpc, err) {
        (true, Error::DeadlineExceeded) => grpc_error(DEADLINE_EXCEEDED, &err.to_string()),
        (true, Error::Canceled) => grpc_error(CANCELLED, &err.to_string()),
        (false, Error::DeadlineExceeded) => plain(StatusCode::GATEWAY_TIMEOUT),
        (false, Error::Canceled) => plain(StatusCode::SERVICE_UNAVAILABLE),
    }
}

fn plain<B: Default>(status: StatusCode) -> Response<B> {
    let mut res = Response::new(B::default());
    *res.status_mut() = status;
    res
}

/// A trailers-only gRPC response: HTTP 200, the status in the headers.
fn grpc_error<B: Default>(code: &'static str, message: &str) -> Response<B> {
    let mut res = Response::new(B::default());
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from_static(code));
    if let Ok(text) = HeaderValue::from_str(&percent_encode(message)) {
        headers.insert("grpc-message", text);
    }
    res
}

/// `grpc-message` is percent-encoded: bytes outside printable ASCII, and
/// `%` itself.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_answers_carry_the_status_in_headers() {
        let res: Response<()> = context_ended(true, Error::DeadlineExceeded);
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "4");
        assert_eq!(res.headers()["grpc-message"], "context deadline exceeded");
        assert_eq!(res.headers()[CONTENT_TYPE], "application/grpc");
        let res: Response<()> = context_ended(true, Error::Canceled);
        assert_eq!(res.headers()["grpc-status"], "1");
        let res: Response<()> = bad_timeout(true, TimeoutError::TooManyDigits);
        assert_eq!(res.headers()["grpc-status"], "3");
    }

    #[test]
    fn http_answers_are_statuses() {
        let status = |res: Response<()>| res.status();
        assert_eq!(status(context_ended(false, Error::DeadlineExceeded)), 504);
        assert_eq!(status(context_ended(false, Error::Canceled)), 503);
        assert_eq!(status(bad_timeout(false, TimeoutError::Empty)), 400);
    }

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(percent_encode("50% done\n"), "50%25 done%0A");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn grpc_is_detected_by_content_type() {
        let mut h = HeaderMap::new();
        assert!(!is_grpc(&h));
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert!(is_grpc(&h));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert!(!is_grpc(&h));
    }
}
