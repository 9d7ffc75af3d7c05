#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tunstack_fuzz::ipv6(data));
