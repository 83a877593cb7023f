//! The receipt text parser: any bytes give a receipt or an error, and a receipt prints back to
//! exactly the bytes it was parsed from (only the canonical form is accepted).
#![no_main]

use vdx_protocol::receipt::Receipt;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(receipt) = Receipt::parse(data) {
        assert_eq!(receipt.to_text().as_bytes(), data);
    }
});
