//! The store's remote protocol decoder reads what any WebSocket client sends. This target
//! feeds the bytes as a binary (MessagePack) message and, when they are UTF-8, as a text (JSON)
//! message, to both the request and the response decoder: refusing is fine, panicking is not.
//! Whatever is accepted must survive a round trip through both encodings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memwire_store::protocol::{
    Format, Frame, Limits, decode_request, decode_response, encode_request, encode_response,
};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    // Re-encoding may grow a message (bin → base64), so the round trip gets room.
    let roomy = Limits {
        max_message_bytes: usize::MAX,
        ..limits
    };
    let text = std::str::from_utf8(data).ok();
    let frames = [Some(Frame::Binary(data)), text.map(Frame::Text)];
    for frame in frames.into_iter().flatten() {
        if let Ok(request) = decode_request(frame, &limits) {
            for format in [Format::Json, Format::MessagePack] {
                let again = encode_request(&request, format);
                let decoded = decode_request(again.as_frame(), &roomy);
                assert_eq!(decoded.ok().as_ref(), Some(&request), "request round trip");
            }
        }
        if let Ok(response) = decode_response(frame, &limits) {
            for format in [Format::Json, Format::MessagePack] {
                let again = encode_response(&response, format);
                let decoded = decode_response(again.as_frame(), &roomy);
                assert_eq!(decoded.ok().as_ref(), Some(&response), "response round trip");
            }
        }
    }
});
