//! `memwire bench store`: the store's operations against a real `memwire serve` process, and
//! the same operations against a `redis-server` from PATH.
//!
//! The parent pins itself to its CPU and starts the server through the hidden `memwire
//! __bench-pinned` ([`child`]), which pins itself to the other CPU and `exec`s `memwire serve`
//! (temporary `--data-dir`, private `MEMWIRE_RUNTIME_DIR`, `--listen 127.0.0.1:0`); the parent
//! reads its banner up to `ready` for the local socket, the WebSocket address and the admin
//! key. redis-server, when on PATH, is started the same way on a free loopback port with an
//! append-only log fsynced every second; without it the redis rows are skipped and the output
//! says so.
//!
//! | case | suite | what one sample is |
//! | --- | --- | --- |
//! | `local-get-8`, `local-get-4096` | store | 1 000 `Reader::get_into`s from the mapping (a reused buffer), / 1 000 |
//! | `local-set` | store | `Local::set` of 8 B until its ack (logged), back to back |
//! | `local-set-cold` | store | the same after a 50 µs pause (the server's end of the link asleep) |
//! | `watch-wake` | store | `Local::set` → a second client's `LocalWatcher::next` returns, on another thread; from when that thread sleeps |
//! | `watch-wake-cold` | store | the same after a 50 µs pause (the server's end of the link asleep too) |
//! | `remote-get`, `remote-set` | store | one `Remote` client, one request in flight |
//! | `remote-set-16` | store | one set of 16 clients each with one in flight; ops/s: the total |
//! | `floor-futex` | baseline | the transport bench's futex ping-pong (for the wake-up target) |
//! | `redis-get`, `redis-set` | baseline | GET / SET of 8 B over RESP on a plain TCP stream |
//! | `redis-pubsub` | baseline | SET → its keyspace notification reaches a subscriber thread |
//!
//! JSON: the transport bench's [`Row`](super::report::Row) schema, as `bench rpc` fills it:
//! `size` is the value's size, `msgs_per_s` operations per second (round trips), with
//! `throughput_from` `round_trip` (1 / mean) or `in_flight` (`remote-set-16`, counted over the
//! wall clock); `one_way_mean_ns` is the mean / 2.
//!
//! | module | what |
//! | --- | --- |
//! | [`command`] | the `bench store` command: its options and cases |
//! | [`child`] | the pinned server processes, and the hidden `__bench-pinned` |
//! | [`resp`] | a minimal Redis protocol client |
//! | [`timing`] | batched and one-at-a-time operations, set → wake-up |
//! | [`table`] | the table, its notes and the targets |

mod child;
mod command;
mod resp;
mod table;
mod timing;

pub(crate) use child::{PinnedArgs, run_pinned};
pub(crate) use command::{Args, run};
