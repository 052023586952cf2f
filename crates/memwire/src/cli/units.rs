//! Sizes (`4096`, `64KiB`, `1MiB`) and durations (`500ms`, `30s`, `5m`): parsed from the
//! command line, printed in tables.

use std::time::Duration;

use bytesize::ByteSize;

/// Parses a size in bytes: a plain number or a number with a unit (`64KiB`, `1MiB`, `1MB`).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("expected a size like 4096, 64KiB or 1MiB ({e})"))
}

/// Parses a duration like `500ms`, `30s` or `5m`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

/// A size for a table: `4096 B`, `64.0 KiB`.
pub(crate) fn show_size(bytes: u64) -> String {
    ByteSize::b(bytes).display().iec().to_string()
}

/// A duration for a table: milliseconds under a second, else whole seconds (`1m 5s`).
pub(crate) fn show_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(64 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("abc").is_err());
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(
            parse_duration("500ms").ok(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_duration("5m").ok(), Some(Duration::from_secs(300)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn durations_show_short() {
        assert_eq!(show_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(show_duration(Duration::from_millis(65_400)), "1m 5s");
    }
}
