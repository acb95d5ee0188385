//! A request's deadline on the wire: the `grpc-timeout` header.
//!
//! gRPC carries the time a call has left, not the instant it ends, so each
//! hop turns the header into a deadline on its own clock and the next hop
//! gets whatever is left ([`Context::remaining`]). The header's value is
//! at most eight ASCII digits and one unit letter: `H` hours, `M` minutes,
//! `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds
//! (gRPC over HTTP/2, "Requests").
//!
//! [`encode_timeout`] picks the finest unit whose value fits in eight
//! digits and rounds up, so a deadline never arrives early at the next
//! hop, and never sends zero: a call with no time left still says `1n`,
//! which the receiver treats as already expired. [`decode_timeout`] is
//! strict: anything but digits and a unit is a [`TimeoutError`], never a
//! panic and never a guess. The one leniency is a value of zero (`0n`),
//! which grpc-go sends for a deadline that has passed: it decodes to
//! `Duration::ZERO`.
//!
//! ```
//! use gocontext::wire::{decode_timeout, encode_timeout};
//! use std::time::Duration;
//!
//! assert_eq!(encode_timeout(Duration::from_millis(1500)).as_str(), "1500000u");
//! assert_eq!(decode_timeout(b"1500000u"), Ok(Duration::from_millis(1500)));
//! assert!(decode_timeout(b"1.5S").is_err());
//! ```

use crate::Context;
use std::fmt;
use std::time::Duration;

/// The header's name, as gRPC spells it (HTTP/2 header names are lower
/// case).
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The most digits a `grpc-timeout` value may have.
pub const MAX_DIGITS: usize = 8;

/// The largest value eight digits hold.
const MAX_VALUE: u64 = 99_999_999;

/// The units, finest first, with their letter and length in nanoseconds.
const UNITS: [(u8, u128); 6] = [
    (b'n', 1),
    (b'u', 1_000),
    (b'm', 1_000_000),
    (b'S', 1_000_000_000),
    (b'M', 60 * 1_000_000_000),
    (b'H', 3_600 * 1_000_000_000),
];

/// An encoded `grpc-timeout` value: up to eight digits and a unit, held
/// inline (encoding allocates nothing).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncodedTimeout {
    buf: [u8; MAX_DIGITS + 1],
    len: u8,
}

impl EncodedTimeout {
    /// The header value, e.g. `"250m"`.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and unit letters are ever written: never fails.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }

    /// The header value's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

impl AsRef<str> for EncodedTimeout {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for EncodedTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for EncodedTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncodedTimeout({:?})", self.as_str())
    }
}

/// Encodes `timeout` as a `grpc-timeout` value: the finest unit whose
/// value, rounded up, fits in eight digits (grpc-go's choice).
///
/// Never zero: `Duration::ZERO` (no time left) encodes as `1n`. A timeout
/// longer than 99,999,999 hours (about 11,400 years) saturates at
/// `99999999H`. Decoding the result gives back at least `timeout`, and at
/// most one unit more (a relative error below 10⁻⁵ once the unit is
/// coarser than nanoseconds).
///
/// ```
/// use gocontext::wire::encode_timeout;
/// use std::time::Duration;
/// assert_eq!(encode_timeout(Duration::from_nanos(99_999_999)).as_str(), "99999999n");
/// assert_eq!(encode_timeout(Duration::from_nanos(100_000_001)).as_str(), "100001u");
/// assert_eq!(encode_timeout(Duration::from_secs(3600)).as_str(), "3600000m");
/// assert_eq!(encode_timeout(Duration::ZERO).as_str(), "1n");
/// ```
pub fn encode_timeout(timeout: Duration) -> EncodedTimeout {
    let nanos = timeout.as_nanos().max(1);
    let (unit, value) = UNITS
        .iter()
        .map(|&(unit, len)| (unit, nanos.div_ceil(len)))
        .find(|&(_, value)| value <= MAX_VALUE as u128)
        .unwrap_or((b'H', MAX_VALUE as u128));
    write_value(value as u64, unit)
}

/// `value` (1 to 99,999,999) in decimal, then the unit letter.
fn write_value(mut value: u64, unit: u8) -> EncodedTimeout {
    let mut digits = [0u8; MAX_DIGITS];
    let mut n = 0;
    while value > 0 || n == 0 {
        digits[MAX_DIGITS - 1 - n] = b'0' + (value % 10) as u8;
        value /= 10;
        n += 1;
    }
    let mut buf = [0u8; MAX_DIGITS + 1];
    buf[..n].copy_from_slice(&digits[MAX_DIGITS - n..]);
    buf[n] = unit;
    EncodedTimeout {
        buf,
        len: n as u8 + 1,
    }
}

/// Why a `grpc-timeout` value could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutError {
    /// The value is empty.
    Empty,
    /// The value contains whitespace (the spec allows none, not even
    /// around the value).
    Whitespace,
    /// There are no digits before the unit, or a byte that is neither a
    /// digit nor the final unit letter.
    Malformed,
    /// More than eight digits.
    TooManyDigits,
    /// The last byte is not one of `H`, `M`, `S`, `m`, `u`, `n`.
    UnknownUnit(u8),
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeoutError::Empty => f.write_str("grpc-timeout is empty"),
            TimeoutError::Whitespace => f.write_str("grpc-timeout contains whitespace"),
            TimeoutError::Malformed => {
                f.write_str("grpc-timeout is not 1 to 8 digits followed by a unit")
            }
            TimeoutError::TooManyDigits => f.write_str("grpc-timeout has more than 8 digits"),
            TimeoutError::UnknownUnit(b) => write!(
                f,
                "grpc-timeout has unknown unit {:?} (expected one of H M S m u n)",
                char::from(*b)
            ),
        }
    }
}

impl std::error::Error for TimeoutError {}

/// Decodes a `grpc-timeout` value (the header's bytes, as
/// `HeaderValue::as_bytes` gives them).
///
/// Accepts exactly 1 to 8 ASCII digits followed by one of `H M S m u n`;
/// leading zeros are fine, and zero decodes to `Duration::ZERO`. Anything
/// else is a [`TimeoutError`].
///
/// ```
/// use gocontext::wire::{decode_timeout, TimeoutError};
/// use std::time::Duration;
/// assert_eq!(decode_timeout(b"3S"), Ok(Duration::from_secs(3)));
/// assert_eq!(decode_timeout(b"3 S"), Err(TimeoutError::Whitespace));
/// assert_eq!(decode_timeout(b"123456789n"), Err(TimeoutError::TooManyDigits));
/// assert_eq!(decode_timeout(b"3s"), Err(TimeoutError::UnknownUnit(b's')));
/// ```
pub fn decode_timeout(value: &[u8]) -> Result<Duration, TimeoutError> {
    let Some((&unit, digits)) = value.split_last() else {
        return Err(TimeoutError::Empty);
    };
    if value.iter().any(u8::is_ascii_whitespace) {
        return Err(TimeoutError::Whitespace);
    }
    let len = unit_nanos(unit).ok_or(TimeoutError::UnknownUnit(unit))?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(TimeoutError::Malformed);
    }
    if digits.len() > MAX_DIGITS {
        return Err(TimeoutError::TooManyDigits);
    }
    let count = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Ok(from_nanos(u128::from(count) * len))
}

fn unit_nanos(unit: u8) -> Option<u128> {
    UNITS.iter().find(|&&(u, _)| u == unit).map(|&(_, len)| len)
}

/// At most 99,999,999 hours: well inside `Duration`.
fn from_nanos(nanos: u128) -> Duration {
    let secs = (nanos / 1_000_000_000) as u64;
    Duration::new(secs, (nanos % 1_000_000_000) as u32)
}

impl Context {
    /// The `grpc-timeout` value to send on an outgoing call made under this
    /// context: its [`remaining`](Context::remaining) time, encoded;
    /// `None` when it has no deadline.
    ///
    /// ```
    /// use gocontext::Clock;
    /// use std::time::Duration;
    /// let clock = Clock::manual();
    /// let (ctx, _cancel) = clock.background().with_timeout(Duration::from_secs(2));
    /// clock.advance(Duration::from_millis(500));
    /// assert_eq!(ctx.grpc_timeout().unwrap().as_str(), "1500000u");
    /// assert_eq!(clock.background().grpc_timeout(), None);
    /// ```
    pub fn grpc_timeout(&self) -> Option<EncodedTimeout> {
        self.remaining().map(encode_timeout)
    }
}

#[cfg(test)]
mod tests;
