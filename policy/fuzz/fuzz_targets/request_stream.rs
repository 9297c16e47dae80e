//! The HTTP/1.x request parser over one connection's bytes, cut into pieces chosen by the
//! input's first bytes: split independence, the stream's contract, agreement with
//! `parse_request_head`, and the kernel's tables against the reference matcher on every
//! request. The properties and the input layout are documented at
//! `weir_policy::testgen::check_request_stream`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| weir_policy::testgen::check_request_stream(data));
