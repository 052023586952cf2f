//! The tenant segment: one tenant's variables in one sealed memfd, written by the server
//! ([`TenantWriter`]) and read straight from memory by local clients ([`TenantView`]).
//!
//! The segment is sized to the tenant's quota when it is created and never grows, so no reader
//! ever holds a mapping that went stale (pages nobody touched cost nothing). The server maps it
//! read-write, then seals it `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL`:
//! every other process can only map it read-only, and the kernel refuses any `write(2)` or
//! writable mapping, through any fd.
//!
//! # Layout
//! All integers little-endian, all offsets from the segment base.
//!
//! ```text
//!  0    header (448 bytes)
//!       0 magic "MWTENANT"   8 layout version u32   12 tenant name length u32
//!      16 epoch u64         24 quota bytes u64      32 segment length u64
//!      40 max variables u32 44 table slots u32 (2^k) 48 ring slots u32 (2^k)  52 max value u32
//!      56 table offset      64 ring offset          72 value-area offset      80 value-area length
//!      96 tenant name (200 bytes)
//!     320 revision u64      (own cache line: the last published revision, head of the ring)
//!     384 retired u64       (0, or 1 once the tenant moved to a fresh segment)
//!  448  variable table: `table slots` entries of 64 bytes, indexed by hash(service, var)
//!       with linear probing
//!       0 sequence u64 (odd while the server writes the entry)
//!       8 state u8 (0 free, 1 live, 2 deleted)  9 service length u8  10 variable length u8
//!      12 value length u32  16 key hash u64  24 version u64 (revision of the last write)
//!      32 timestamp ns u64  40 names offset u64 (service then variable)  48 value offset u64
//!  ...  change ring: `ring slots` slots of 48 bytes; revision r lives in slot r mod slots
//!       0 revision u64 (u64::MAX while the server rewrites the slot)
//!       8 entry index u32  12 kind u32 (1 set, 2 delete)  16 timestamp ns u64
//!      24 key hash u64  32 batch end u64 (last revision of the write it belongs to)
//!  ...  value area (page-aligned): names and values, 8-aligned blocks
//! ```
//!
//! The value area's free list lives in the server's memory, never in the segment: the segment
//! holds only what readers need. It is `quota + one largest value + one pair of names` long,
//! so a value can be replaced by allocating the new block before freeing the old. The quota
//! charges value and name bytes (rounded to 8) plus 64 bytes per live variable; the table has
//! twice `max_variables` slots, so probe paths stay short.
//!
//! # Reading: sequence locks
//! Each entry is a sequence lock. A reader loads the sequence (Acquire), copies the entry and
//! then the names and value it points to with [`memwire_shm::Mapping::read_atomic`] (relaxed
//! atomic loads: never a plain racy read), issues an Acquire fence and re-loads the sequence;
//! a copy taken while the sequence was odd or changed is thrown away and taken again. Offsets
//! and lengths read from the segment are checked against the layout before they are used.
//! Blocks freed by the server may be reused at once: a reader that still follows an old offset
//! fails its sequence check, because the entry changed before the block was freed.
//!
//! A `get` costs a hash of the two names, then for each probed slot two loads of the
//! sequence and a 48-byte copy, plus the names and the value of the slot that matches. A reader
//! stuck behind an odd sequence for about a million yields (the server died mid-write) gets
//! [`crate::Error::ServerGone`].
//!
//! # `set_many`: all or none
//! A `set_many` locks every entry it touches (all sequences odd) before it changes any byte,
//! and unlocks them only once all are written. A reader that sees one member's new value has
//! seen that member's unlock, which comes after every member was locked, so any member it
//! reads later is locked (it waits) or new. Readers pay nothing for this: no tenant-wide word
//! is read on the get path; only readers of the members of a batch in progress wait, for as
//! long as the batch takes to write. Each member gets its own revision (consecutive); the
//! ring slots of a write are published by one store of the revision word, and each carries
//! the write's last revision, so a watcher sees a batch whole or not at all.
//!
//! # Watching: the change ring
//! [`TenantView::changes_since`] reads slots `r+1 ..= revision`. A slot's revision word is its
//! sequence: a slot found holding another revision was overwritten, and the watcher gets the
//! whole writes read so far, then [`Changes::Lagged`] on its next call (never a silent gap).
//! A deleted variable keeps its names until its delete has left the ring, so a watcher can
//! always name a change it can still read.
//!
//! # What a broken server can do
//! The server is trusted, but a bug must give an error: every index and length read from the
//! segment is bounded before use, a confirmed inconsistency is [`crate::Error::CorruptSegment`],
//! and a reader never panics or reads outside the mapping (the mapping's own checks stop it).

mod alloc;
mod layout;
mod reader;
mod writer;

pub use reader::{ChangeEvent, ChangeKind, Changes, Stamp, TenantView, Value};
pub use writer::{DEFAULT_MAX_VALUE, MAX_VARIABLES, TenantConfig, TenantWriter, VariableInfo};
