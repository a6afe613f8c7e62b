#![no_main]
// The check is docket_fuzz::export_parser, shared with the regression replay (src/lib.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| docket_fuzz::export_parser(data));
