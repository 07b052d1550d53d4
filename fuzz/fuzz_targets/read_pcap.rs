#![no_main]
//! Classic pcap reader on any bytes (a header is supplied when missing).
libfuzzer_sys::fuzz_target!(|data: &[u8]| symrss_pcap::fuzz::check_pcap(data));
