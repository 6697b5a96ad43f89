//! Timestamps on the wire (RFC 3339 / ISO-8601, as Apple sends them) and in the store
//! (Unix seconds).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Unix seconds of an RFC 3339 timestamp (`2027-01-15T18:27:41Z`, offsets and fractions
/// allowed). `None` if it does not parse.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s.trim(), &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// RFC 3339 in UTC with second precision.
pub fn format_rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        assert_eq!(parse_rfc3339("1970-01-01T00:01:00Z"), Some(60));
        assert_eq!(
            parse_rfc3339("2023-03-23T17:06:53.123+01:00"),
            Some(1_679_587_613)
        );
        assert_eq!(format_rfc3339(1_679_587_613), "2023-03-23T16:06:53Z");
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
