#![no_main]
//! See `gocontext_fuzz::tree_ops`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gocontext_fuzz::tree_ops::run(data));
