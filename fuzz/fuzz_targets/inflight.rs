#![no_main]
//! See `gocontext_fuzz::inflight`: an application's own code, fuzzed under
//! context trees built by `gocontext::fuzz`.

use gocontext_fuzz::inflight::{run, Step};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|steps: Vec<Step>| run(&steps));
