#![no_main]
//! See `gocontext_fuzz::wheel`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gocontext_fuzz::wheel::run(data));
