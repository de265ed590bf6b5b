//! How long kindred waits on a host before calling it stuck. Slow hosts are real (CI runners,
//! emulated CPUs, laptops on battery), so every fixed wait is generous by default and
//! multiplied by `KINDRED_TIMEOUT_SCALE` (a whole number, default 1) for hosts slower still.

use std::time::Duration;

/// The environment variable that scales every wait.
pub const SCALE_ENV: &str = "KINDRED_TIMEOUT_SCALE";

/// The factor from `KINDRED_TIMEOUT_SCALE`; 1 when unset. A value that is not a whole number
/// from 1 to 100 is reported once and ignored, rather than failing a create late.
pub fn scale() -> u32 {
    parse_scale(std::env::var(SCALE_ENV).ok().as_deref()).unwrap_or_else(|bad| {
        tracing::warn!("{SCALE_ENV}={bad:?} is not a whole number from 1 to 100; using 1");
        1
    })
}

fn parse_scale(value: Option<&str>) -> Result<u32, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(1),
        Some(v) => match v.parse::<u32>() {
            Ok(n @ 1..=100) => Ok(n),
            _ => Err(v.to_string()),
        },
    }
}

/// `base` multiplied by the host's scale.
pub fn scaled(base: Duration) -> Duration {
    base * scale()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_is_a_whole_number_from_1_to_100() {
        assert_eq!(parse_scale(None), Ok(1));
        assert_eq!(parse_scale(Some("")), Ok(1));
        assert_eq!(parse_scale(Some("4")), Ok(4));
        assert_eq!(parse_scale(Some(" 2 ")), Ok(2));
        for bad in ["0", "101", "1.5", "-1", "fast"] {
            assert_eq!(parse_scale(Some(bad)), Err(bad.to_string()), "{bad}");
        }
    }
}
