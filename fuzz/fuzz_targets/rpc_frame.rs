//! RPC frames, and the payloads inside them, come from the peer. This target decodes arbitrary
//! bytes as a frame (an accepted frame must re-encode to exactly the same bytes), as an error
//! record, and as a method's arguments in both encodings: refusing is fine, panicking is not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memwire_rpc::fuzzing;

fuzz_target!(|data: &[u8]| {
    if let Some(again) = fuzzing::frame(data) {
        assert_eq!(again, data, "an accepted frame re-encodes exactly");
    }
    let _ = fuzzing::error_record(data);
    let _ = fuzzing::arguments(data);
});
