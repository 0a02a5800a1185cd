//! Humanized values for the TUI: sizes in binary units, epoch-ms and RFC 3339 times as ages
//! relative to a given "now" (`3m ago`, `in 364d`), counts with thousands separators, and cells
//! cut to a width with an ellipsis. Every function is pure: "now" is an argument.

/// Bytes in binary units with one decimal (`0 B`, `512 B`, `1.5 KiB`, `12.0 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A count with `,` between thousands (`1,234,567`).
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A span of milliseconds in its largest whole unit (`850ms`, `42s`, `3m`, `5h`, `12d`).
pub fn span(ms: u64) -> String {
    let s = ms / 1000;
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m", s / 60)
    } else if s < 86_400 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86_400)
    }
}

/// An epoch-ms instant relative to `now_ms`: `just now` within a second, else `5s ago` or
/// `in 3d`.
pub fn age_ms(at_ms: u64, now_ms: u64) -> String {
    if at_ms <= now_ms {
        let d = now_ms - at_ms;
        if d < 1000 {
            "just now".into()
        } else {
            format!("{} ago", span(d))
        }
    } else {
        let d = at_ms - now_ms;
        if d < 1000 {
            "just now".into()
        } else {
            format!("in {}", span(d))
        }
    }
}

/// An optional epoch-ms instant as an age; `-` when absent.
pub fn opt_age_ms(at_ms: Option<u64>, now_ms: u64) -> String {
    at_ms.map_or_else(|| "-".into(), |t| age_ms(t, now_ms))
}

/// Milliseconds since the epoch of an RFC 3339 timestamp, if it parses.
pub fn rfc3339_ms(s: &str) -> Option<u64> {
    let t = chrono::DateTime::parse_from_rfc3339(s.trim()).ok()?;
    u64::try_from(t.timestamp_millis()).ok()
}

/// An RFC 3339 timestamp as an age; a value that does not parse is shown as given, an absent
/// one as `absent` (e.g. `never`, `-`).
pub fn age_str(s: Option<&str>, now_ms: u64, absent: &str) -> String {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => absent.to_string(),
        Some(s) => rfc3339_ms(s).map_or_else(|| s.to_string(), |t| age_ms(t, now_ms)),
    }
}

/// An RFC 3339 timestamp as `age (timestamp)` for detail views; see [`age_str`].
pub fn age_and_raw(s: Option<&str>, now_ms: u64, absent: &str) -> String {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        Some(raw) if rfc3339_ms(raw).is_some() => {
            format!("{} ({raw})", age_str(Some(raw), now_ms, absent))
        }
        other => age_str(other, now_ms, absent),
    }
}

/// At most `max` characters: a longer string keeps `max - 1` and ends in `…`.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(12 * 1024 * 1024), "12.0 MiB");
        assert_eq!(bytes(3 * 1024u64.pow(4)), "3.0 TiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn counts_group_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn ages_are_relative_to_now() {
        let now = 1_000_000_000_000;
        assert_eq!(age_ms(now, now), "just now");
        assert_eq!(age_ms(now - 5_000, now), "5s ago");
        assert_eq!(age_ms(now - 3 * 60_000 - 10, now), "3m ago");
        assert_eq!(age_ms(now - 2 * 3_600_000, now), "2h ago");
        assert_eq!(age_ms(now + 364 * 86_400_000, now), "in 364d");
        assert_eq!(opt_age_ms(None, now), "-");
    }

    #[test]
    fn rfc3339_times_become_ages() {
        let now = rfc3339_ms("2026-12-04T20:00:00Z").unwrap();
        assert_eq!(age_str(Some("2026-12-04T19:58:00Z"), now, "-"), "2m ago");
        assert_eq!(
            age_str(Some("2027-12-04T20:00:00+00:00"), now, "-"),
            "in 365d"
        );
        assert_eq!(age_str(None, now, "never"), "never");
        assert_eq!(age_str(Some("yesterday"), now, "-"), "yesterday");
        assert_eq!(
            age_and_raw(Some("2026-12-04T19:59:30Z"), now, "-"),
            "30s ago (2026-12-04T19:59:30Z)"
        );
    }

    #[test]
    fn cells_are_cut_with_an_ellipsis() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("exactly-10", 10), "exactly-10");
        assert_eq!(cut("much-too-long-name", 8), "much-to…");
        assert_eq!(cut("x", 0), "");
    }
}
