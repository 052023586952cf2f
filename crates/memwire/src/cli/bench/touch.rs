//! Touching a payload: the sender writes every byte, the receiver checksums every byte.
//!
//! Message `k` of a run (counted from 0 by both sides) is filled with the byte `k as u8` going
//! out and `!(k as u8)` coming back, so the receiver knows what the checksum must be and a
//! payload that arrives wrong is an error, not a number.

use anyhow::{Result, ensure};

/// The byte message `k` carries from parent to peer; the echo carries its complement.
pub(crate) fn pattern(k: u64) -> u8 {
    // Truncation is the point: the pattern cycles through every byte value.
    (k & 0xff) as u8
}

/// Writes `byte` to every byte of `buf`.
pub(crate) fn fill(buf: &mut [u8], byte: u8) {
    buf.fill(byte);
}

/// Reads every byte of `buf` and checks that each is `byte` (through the sum, which the
/// compiler vectorises: what "checksums every byte" costs).
pub(crate) fn verify(buf: &[u8], byte: u8) -> Result<()> {
    let sum: u64 = std::hint::black_box(buf)
        .iter()
        .map(|&b| u64::from(b))
        .sum();
    let expected = u64::from(byte) * buf.len() as u64;
    ensure!(
        sum == expected,
        "payload checksum mismatch: {sum} for {} bytes of {byte:#04x}",
        buf.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_catches_a_changed_byte() {
        let mut buf = vec![0; 4096];
        fill(&mut buf, pattern(7));
        assert!(verify(&buf, 7).is_ok());
        buf[100] = 8;
        assert!(verify(&buf, 7).is_err());
        assert_eq!(pattern(0x1ff), 0xff);
    }
}
