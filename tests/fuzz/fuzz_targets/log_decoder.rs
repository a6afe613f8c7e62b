#![no_main]
// The check is docket_fuzz::log_decoder, shared with the regression replay (src/lib.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| docket_fuzz::log_decoder(data));
