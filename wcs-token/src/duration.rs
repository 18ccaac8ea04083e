//! Ages and expiries for people: the two largest units, like `2h5m` or `3d4h`.
//!
//! Hand-written: humantime prints every unit with spaces (`2h 5m 3s`), not this compact form
//! that reads like `--max-age` input.

pub fn human(secs: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let mut out = String::new();
    let mut rest = secs;
    let mut used = 0;
    for (size, name) in UNITS {
        if rest >= size && used < 2 {
            out.push_str(&format!("{}{name}", rest / size));
            rest %= size;
            used += 1;
        } else if used > 0 {
            used += 1; // only adjacent units: 1d0h3m shows as 1d
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_largest_adjacent_units() {
        assert_eq!(human(0), "0s");
        assert_eq!(human(59), "59s");
        assert_eq!(human(61), "1m1s");
        assert_eq!(human(3600), "1h");
        assert_eq!(human(3723), "1h2m");
        assert_eq!(human(86_400 + 180), "1d");
        assert_eq!(human(2 * 86_400 + 4 * 3600 + 5), "2d4h");
    }
}
