//! `wire`: the `grpc-timeout` codec. Arbitrary bytes go to the decoder,
//! which must agree with a plain reference parser (same value, same
//! error); whatever decodes must re-encode to a value that decodes to no
//! less; and the bytes read as a duration must encode within eight digits,
//! never below the duration and never to zero.

use gocontext::wire::{decode_timeout, encode_timeout, TimeoutError, MAX_DIGITS};
use std::time::Duration;

/// The spec, read as directly as possible (and independently of the
/// crate's code): digits, then a unit.
fn reference(input: &[u8]) -> Result<Duration, TimeoutError> {
    if input.is_empty() {
        return Err(TimeoutError::Empty);
    }
    if input.iter().any(|b| b" \t\n\r\x0c".contains(b)) {
        return Err(TimeoutError::Whitespace);
    }
    let unit = input[input.len() - 1];
    let per: u64 = match unit {
        b'H' => 3_600_000_000_000,
        b'M' => 60_000_000_000,
        b'S' => 1_000_000_000,
        b'm' => 1_000_000,
        b'u' => 1_000,
        b'n' => 1,
        other => return Err(TimeoutError::UnknownUnit(other)),
    };
    let text =
        std::str::from_utf8(&input[..input.len() - 1]).map_err(|_| TimeoutError::Malformed)?;
    if text.is_empty() || text.starts_with('+') {
        return Err(TimeoutError::Malformed); // `parse` would take a sign
    }
    if text.len() > MAX_DIGITS {
        let digits_only = text
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .is_empty();
        return Err(if digits_only {
            TimeoutError::TooManyDigits
        } else {
            TimeoutError::Malformed
        });
    }
    let value: u128 = text.parse().map_err(|_| TimeoutError::Malformed)?;
    let nanos = value * u128::from(per);
    Ok(Duration::new(
        (nanos / 1_000_000_000) as u64,
        (nanos % 1_000_000_000) as u32,
    ))
}

pub fn run(data: &[u8]) {
    let got = decode_timeout(data);
    assert_eq!(got, reference(data), "decode({data:?})");
    if let Ok(d) = got {
        check_encoding(d);
    }
    let mut raw = [0u8; 12];
    let n = data.len().min(12);
    raw[..n].copy_from_slice(&data[..n]);
    let secs = u64::from_le_bytes(raw[..8].try_into().unwrap());
    let nanos = u32::from_le_bytes(raw[8..].try_into().unwrap()) % 1_000_000_000;
    // Spread over every scale: shift the seconds down by the first byte.
    check_encoding(Duration::new(secs >> (raw[0] % 64), nanos));
}

fn check_encoding(d: Duration) {
    let enc = encode_timeout(d);
    let bytes = enc.as_bytes();
    assert!(
        bytes.len() >= 2 && bytes.len() <= MAX_DIGITS + 1,
        "{d:?} -> {enc}"
    );
    assert_ne!(bytes[0], b'0', "{d:?} -> {enc}: zero or padded");
    let back = decode_timeout(bytes).unwrap_or_else(|e| panic!("{d:?} -> {enc}: {e}"));
    let max = Duration::from_secs(99_999_999 * 3600);
    assert!(back >= d.min(max), "{d:?} -> {enc} -> {back:?}");
    assert_eq!(encode_timeout(back), enc, "{d:?}: re-encoding changed");
}
