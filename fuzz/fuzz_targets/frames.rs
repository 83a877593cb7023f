//! The transfer frame decoder and the receiver's order checks: any bytes end in frames or a
//! `WireError`, never a panic, and a decoded frame re-encodes to the same bytes.
#![no_main]

use vdx_protocol::transfer::Inbound;
use vdx_protocol::wire::FrameDecoder;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut decoder = FrameDecoder::new();
    decoder.feed(data);
    let mut inbound = Inbound::new();
    while let Ok(Some(frame)) = decoder.next_frame() {
        let mut again = Vec::new();
        if frame.encode(&mut again).is_ok() {
            let mut check = FrameDecoder::new();
            check.feed(&again);
            assert_eq!(check.next_frame().ok().flatten().as_ref(), Some(&frame));
        }
        if inbound.handle(frame).is_err() {
            break;
        }
        let _ = inbound.accept(0);
    }
});
