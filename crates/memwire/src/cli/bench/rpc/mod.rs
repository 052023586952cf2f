//! `memwire bench rpc`: calls between two processes through memwire-rpc, against the raw
//! link and a Unix socket.
//!
//! The parent (pinned to its CPU, a current-thread tokio runtime on that thread) starts the
//! peer, the `memwire` binary itself as the hidden `memwire __bench-rpc-peer` ([`peer`]), with
//! `Worker::spawn_with`; the peer pins itself to another CPU and serves the [`adder`] service
//! with `memwire::rpc::serve_async_with` on a current-thread runtime. Each case gets a fresh
//! worker. `transport-spin` is the
//! transport bench's own `spin` case at 64 B untouched (its harness, its `__bench-peer`), and
//! `unix-socket` is [`socket`]'s blocking caller and server.
//!
//! | case | suite | what one sample is |
//! | --- | --- | --- |
//! | `typed-spin` | rpc | `AdderClient::add(k, 1)` (postcard), link waiting `Spin` both ends |
//! | `by-name-spin` | rpc | `client.call("add", &(k, 1))` (MessagePack), same link |
//! | `typed-block` | rpc | as `typed-spin`, both ends `Block` (sleep at once) |
//! | `typed-spin-16` | rpc | one of 16 calls kept in flight by 16 tasks; calls/s over the wall clock |
//! | `spawn-to-first-call` | rpc | `Worker::spawn_with` until the first `add` answers |
//! | `transport-spin` | baseline | a 64 B echo round trip on a `Spin` link (raw memwire-transport) |
//! | `unix-socket` | baseline | the same `add`, postcard, length-prefixed over a Unix socket |
//!
//! JSON: the transport bench's [`Row`](super::report::Row) schema. For a call, `size` is 0
//! (not a fixed-size message), `payload` is `touched` (arguments are encoded and decoded),
//! `msgs_per_s` is calls per second (round trips, not one way), `one_way_mean_ns` is the mean
//! call time / 2, and `wake_syscalls_per_msg` is `null` (the client does not count them).
//! `throughput_from` says where calls/s comes from: `round_trip` (1 / mean call time),
//! `in_flight` (counted over the wall clock) or `none` (`spawn-to-first-call`, whose
//! `msgs_per_s` and `one_way_mean_ns` are 0: they do not apply to a start).
//!
//! | module | what |
//! | --- | --- |
//! | [`command`] | the `bench rpc` command: its options and cases |
//! | [`adder`] | the `#[memwire::service]` every call goes to |
//! | [`timing`] | calls one at a time, 16 in flight, and worker starts, timed |
//! | [`socket`] | the Unix socket baseline, both sides |
//! | [`peer`] | the hidden peer command |
//! | [`table`] | the table, its notes and the targets |

mod adder;
mod command;
mod peer;
mod socket;
mod table;
pub(crate) mod timing;

pub(crate) use command::{Args, run};
pub(crate) use peer::{RpcPeerArgs, run as run_peer};
