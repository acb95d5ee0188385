#![no_main]
//! See `gocontext_fuzz::threads`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gocontext_fuzz::threads::run(data));
