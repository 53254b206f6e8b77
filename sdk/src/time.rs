//! Timestamps as providers write them. Operations get the time from the
//! call context ([`crate::Ctx::timestamp`]); these only format and parse.

use crate::error::FormatError;
use time::{
    OffsetDateTime, PrimitiveDateTime, UtcOffset, format_description::FormatItem,
    macros::format_description,
};

/// China Standard Time (UTC+8), in which WeChat Pay writes its times.
pub const CHINA: i32 = 8 * 3600;

const COMPACT: &[FormatItem<'static>] =
    format_description!("[year][month][day][hour][minute][second]");
const DASHED: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

fn offset(seconds: i32) -> Result<UtcOffset, FormatError> {
    UtcOffset::from_whole_seconds(seconds)
        .map_err(|e| FormatError::new(format!("bad UTC offset: {e}")))
}

fn at(unix: i64, utc_offset: i32) -> Result<OffsetDateTime, FormatError> {
    Ok(OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|e| FormatError::new(format!("timestamp {unix} out of range: {e}")))?
        .to_offset(offset(utc_offset)?))
}

/// `yyyyMMddHHmmss` in the given offset (WeChat v2 `time_expire`).
pub fn format_compact(unix: i64, utc_offset: i32) -> Result<String, FormatError> {
    at(unix, utc_offset)?
        .format(COMPACT)
        .map_err(|e| FormatError::new(e.to_string()))
}

/// Parses `yyyyMMddHHmmss` written in the given offset (WeChat v2 `time_end`).
pub fn parse_compact(text: &str, utc_offset: i32) -> Result<i64, FormatError> {
    let t = PrimitiveDateTime::parse(text, COMPACT)
        .map_err(|e| FormatError::new(format!("bad time `{text}`: {e}")))?;
    Ok(t.assume_offset(offset(utc_offset)?).unix_timestamp())
}

/// Parses `yyyy-MM-dd HH:mm:ss` written in the given offset (WeChat v2
/// refund `success_time`).
pub fn parse_dashed(text: &str, utc_offset: i32) -> Result<i64, FormatError> {
    let t = PrimitiveDateTime::parse(text, DASHED)
        .map_err(|e| FormatError::new(format!("bad time `{text}`: {e}")))?;
    Ok(t.assume_offset(offset(utc_offset)?).unix_timestamp())
}

/// RFC 3339 in the given offset, e.g. `2015-05-20T13:29:35+08:00` (v3).
pub fn format_rfc3339(unix: i64, utc_offset: i32) -> Result<String, FormatError> {
    at(unix, utc_offset)?
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| FormatError::new(e.to_string()))
}

/// Parses RFC 3339 to Unix seconds.
pub fn parse_rfc3339(text: &str) -> Result<i64, FormatError> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| FormatError::new(format!("bad RFC 3339 time `{text}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn china_time_roundtrips() {
        // 2017-03-30 10:24:22 +08:00 == 1490840662 (the paySign example's timeStamp).
        assert_eq!(
            format_compact(1_490_840_662, CHINA).unwrap(),
            "20170330102422"
        );
        assert_eq!(
            parse_compact("20170330102422", CHINA).unwrap(),
            1_490_840_662
        );
        assert_eq!(
            parse_dashed("2017-03-30 10:24:22", CHINA).unwrap(),
            1_490_840_662
        );
        assert_eq!(
            format_rfc3339(1_490_840_662, CHINA).unwrap(),
            "2017-03-30T10:24:22+08:00"
        );
        assert_eq!(
            parse_rfc3339("2017-03-30T02:24:22Z").unwrap(),
            1_490_840_662
        );
        assert!(parse_compact("2017033010242", CHINA).is_err());
        assert!(parse_compact("20171330102422", CHINA).is_err());
    }
}
