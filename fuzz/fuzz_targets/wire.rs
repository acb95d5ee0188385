#![no_main]
//! See `gocontext_fuzz::wire`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gocontext_fuzz::wire::run(data));
