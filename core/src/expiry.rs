//! When a token file is too old (`wcs_token_auth_max_age`): shared by the module and the
//! `wcs-token` CLI so that both draw the line at the same second.

/// A token whose file was modified at `mtime` is still valid at `now` (both seconds since
/// the epoch) under `max_age_secs`; `None` means tokens never expire. The boundary second
/// itself is still valid, and a file from the future (clock skew) is fresh.
pub fn is_fresh(mtime: i64, now: i64, max_age_secs: Option<u64>) -> bool {
    match max_age_secs {
        None => true,
        Some(max) => now.saturating_sub(mtime) <= i64::try_from(max).unwrap_or(i64::MAX),
    }
}

/// Seconds left before a token with this `mtime` expires (negative once expired).
pub fn remaining_secs(mtime: i64, now: i64, max_age_secs: u64) -> i64 {
    let max = i64::try_from(max_age_secs).unwrap_or(i64::MAX);
    mtime.saturating_add(max).saturating_sub(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boundary_second_is_still_fresh() {
        assert!(is_fresh(100, 160, Some(60)));
        assert!(!is_fresh(100, 161, Some(60)));
        assert_eq!(remaining_secs(100, 160, 60), 0);
        assert_eq!(remaining_secs(100, 161, 60), -1);
    }

    #[test]
    fn no_max_age_never_expires_and_future_files_are_fresh() {
        assert!(is_fresh(0, i64::MAX, None));
        assert!(is_fresh(1000, 10, Some(1)));
        assert!(is_fresh(i64::MIN, i64::MAX, Some(u64::MAX)));
        assert_eq!(remaining_secs(0, 0, u64::MAX), i64::MAX);
    }
}
