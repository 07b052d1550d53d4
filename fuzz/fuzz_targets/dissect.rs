#![no_main]
//! Dissector: any link type byte + any frame; no panic, invariants hold.
libfuzzer_sys::fuzz_target!(|data: &[u8]| symrss_wire::fuzz::check_frame(data));
