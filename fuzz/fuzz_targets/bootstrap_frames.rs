//! Bootstrap frames cross the Unix socket between processes that need not trust each other: a
//! host reads a client's request, a guest reads the host's welcome or refusal, `memwire ls`
//! reads a host's status reply. This target feeds the same arbitrary bytes to all three
//! decoders: each may refuse them but never panic, and whatever one accepts round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memwire_transport::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::hello(data);
    fuzzing::request(data);
    fuzzing::status_reply(data);
});
