#![no_main]
// The check is docket_fuzz::policy_loader, shared with the regression replay (src/lib.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| docket_fuzz::policy_loader(data));
