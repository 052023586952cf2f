//! Little-endian fields of the frames and headers a peer writes. Callers check lengths first;
//! these read fixed offsets of a slice they have already sized.

/// The `u32` at `offset` of `bytes` (little-endian). Panics only if the caller skipped its
/// length check: `offset + 4 <= bytes.len()`.
#[inline]
pub(crate) fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes([
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ])
}

/// The `u64` at `offset` of `bytes` (little-endian); needs `offset + 8 <= bytes.len()`.
#[inline]
pub(crate) fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(b)
}
