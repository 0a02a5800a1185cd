//! libFuzzer entry for `layer_fuzz::h1_request::run` (see that module for what it checks).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| layer_fuzz::h1_request::run(data));
