use super::*;
use std::time::Duration;

const NS: u128 = 1;
const UNIT_LENS: [(char, u128); 6] = [
    ('n', NS),
    ('u', 1_000),
    ('m', 1_000_000),
    ('S', 1_000_000_000),
    ('M', 60_000_000_000),
    ('H', 3_600_000_000_000),
];

fn unit_len(c: char) -> u128 {
    UNIT_LENS.iter().find(|(u, _)| *u == c).unwrap().1
}

/// Checks every promise of `encode_timeout` for one duration.
fn check_encoding(d: Duration) {
    let enc = encode_timeout(d);
    let s = enc.as_str();
    let (digits, unit) = s.split_at(s.len() - 1);
    assert!(
        (1..=MAX_DIGITS).contains(&digits.len()),
        "{d:?} -> {s}: 1 to 8 digits"
    );
    assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{d:?} -> {s}");
    assert!(
        !digits.starts_with('0'),
        "{d:?} -> {s}: never zero, no padding"
    );
    let back = decode_timeout(enc.as_bytes()).expect("our own encoding decodes");
    let max = Duration::new(99_999_999 * 3600, 0);
    if d > max {
        assert_eq!(back, max, "saturates");
        return;
    }
    assert!(back >= d, "{d:?} -> {s} -> {back:?}: rounded down");
    let unit = unit_len(unit.chars().next().unwrap());
    let wanted = d.max(Duration::from_nanos(1)); // zero is sent as 1n
    assert!(
        back.as_nanos() - wanted.as_nanos() < unit,
        "{d:?} -> {s}: more than one unit over"
    );
    if unit > 1 {
        // The finest unit was chosen: the next finer one would not fit.
        let finer = UNIT_LENS
            .iter()
            .rev()
            .find(|(_, len)| *len < unit)
            .unwrap()
            .1;
        assert!(
            d.as_nanos().div_ceil(finer) > 99_999_999,
            "{d:?} -> {s}: too coarse"
        );
        assert!((back - d).as_secs_f64() <= d.as_secs_f64() * 1e-5);
    }
    assert_eq!(encode_timeout(back), enc, "{d:?}: re-encoding is stable");
}

#[test]
fn encodes_the_finest_unit_that_fits() {
    let cases: [(Duration, &str); 14] = [
        (Duration::ZERO, "1n"),
        (Duration::from_nanos(1), "1n"),
        (Duration::from_nanos(99_999_999), "99999999n"),
        (Duration::from_nanos(100_000_000), "100000u"),
        (Duration::from_nanos(100_000_001), "100001u"),
        (Duration::from_millis(250), "250000u"),
        (Duration::from_secs(1), "1000000u"),
        (Duration::from_secs(99_999), "99999000m"),
        (Duration::from_secs(100_000), "100000S"),
        (
            Duration::from_secs(100_000) + Duration::from_nanos(1),
            "100001S",
        ),
        (Duration::from_secs(99_999_999), "99999999S"),
        (Duration::from_secs(100_000_000), "1666667M"),
        (Duration::from_secs(60 * 99_999_999 + 1), "1666667H"),
        (Duration::MAX, "99999999H"),
    ];
    for (d, want) in cases {
        assert_eq!(encode_timeout(d).as_str(), want, "{d:?}");
        check_encoding(d);
    }
}

#[test]
fn round_trip_property_over_every_scale() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6772_7063);
    for _ in 0..crate::scaled("wire round trips", 200_000, 200) {
        // A magnitude from 1 ns to past the saturation point, then a value.
        let bits = rng.gen_range(0..=70u32);
        let nanos: u128 = rng.gen_range(0..=(1u128 << bits));
        let d = Duration::new(
            (nanos / 1_000_000_000).min(u64::MAX as u128) as u64,
            (nanos % 1_000_000_000) as u32,
        );
        check_encoding(d);
    }
    // Every unit boundary, and one either side.
    for (_, len) in UNIT_LENS {
        for base in [len, len * 99_999_999, len * 100_000_000] {
            for nanos in [base - 1, base, base + 1] {
                check_encoding(Duration::from_nanos(nanos as u64));
            }
        }
    }
}

#[test]
fn decodes_every_unit() {
    assert_eq!(decode_timeout(b"7H"), Ok(Duration::from_secs(7 * 3600)));
    assert_eq!(decode_timeout(b"7M"), Ok(Duration::from_secs(7 * 60)));
    assert_eq!(decode_timeout(b"7S"), Ok(Duration::from_secs(7)));
    assert_eq!(decode_timeout(b"7m"), Ok(Duration::from_millis(7)));
    assert_eq!(decode_timeout(b"7u"), Ok(Duration::from_micros(7)));
    assert_eq!(decode_timeout(b"7n"), Ok(Duration::from_nanos(7)));
    assert_eq!(decode_timeout(b"00000007S"), Ok(Duration::from_secs(7)));
    assert_eq!(
        decode_timeout(b"0n"),
        Ok(Duration::ZERO),
        "grpc-go's expired deadline"
    );
    assert_eq!(
        decode_timeout(b"99999999H"),
        Ok(Duration::from_secs(99_999_999 * 3600))
    );
}

#[test]
fn rejects_bad_values_with_a_reason() {
    use TimeoutError::*;
    let cases: [(&[u8], TimeoutError); 17] = [
        (b"", Empty),
        (b"S", Malformed),
        (b"1", UnknownUnit(b'1')),
        (b"10", UnknownUnit(b'0')),
        (b"1s", UnknownUnit(b's')),
        (b"1h", UnknownUnit(b'h')),
        (b"1\xff", UnknownUnit(0xff)),
        (b" 1S", Whitespace),
        (b"1S ", Whitespace),
        (b"1 S", Whitespace),
        (b"1\tS", Whitespace),
        (b"-1S", Malformed),
        (b"+1S", Malformed),
        (b"1.5S", Malformed),
        (b"1SS", Malformed),
        (b"123456789S", TooManyDigits),
        (b"\xd9\xa1S", Malformed),
    ];
    for (input, want) in cases {
        assert_eq!(decode_timeout(input), Err(want), "{input:?}");
        assert!(!want.to_string().is_empty());
    }
    assert_eq!(
        UnknownUnit(b's').to_string(),
        "grpc-timeout has unknown unit 's' (expected one of H M S m u n)"
    );
}

#[test]
fn remaining_and_grpc_timeout_follow_the_clock() {
    let clock = crate::Clock::manual();
    let (ctx, _c) = clock.background().with_timeout(Duration::from_millis(100));
    assert_eq!(ctx.remaining(), Some(Duration::from_millis(100)));
    assert_eq!(ctx.grpc_timeout().unwrap().as_str(), "100000u");
    clock.advance(Duration::from_millis(99));
    assert_eq!(ctx.grpc_timeout().unwrap().as_str(), "1000000n");
    clock.advance(Duration::from_millis(1));
    assert!(ctx.is_done());
    assert_eq!(ctx.remaining(), Some(Duration::ZERO));
    assert_eq!(ctx.grpc_timeout().unwrap().as_str(), "1n");
    let (child, _c2) = ctx.with_cancel();
    assert_eq!(child.remaining(), Some(Duration::ZERO));
    assert_eq!(crate::Context::background().remaining(), None);
}
