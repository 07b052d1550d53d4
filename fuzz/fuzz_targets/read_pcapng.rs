#![no_main]
//! pcapng reader on any bytes (a section and interface are supplied when missing).
libfuzzer_sys::fuzz_target!(|data: &[u8]| symrss_pcap::fuzz::check_pcapng(data));
