//! The whole reader: armour, envelope, recipient infos, decryption, inner SignedData.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vdx_crypto::fuzzing::open(data);
});
