//! The inner layer alone, which an attacker controls only with a valid content key.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vdx_crypto::fuzzing::signed_data(data);
});
