//! The page frame and the small HTML pieces every view uses: escaping, the tab bar, cards,
//! tables, banners, and humanized times and sizes. Everything is inline (one stylesheet in the
//! page): the dashboard loads nothing from anywhere else.

use std::fmt::Write;

/// The tabs: `(path, label)`.
pub const TABS: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/namespaces", "Namespaces"),
    ("/pipelines", "Pipelines"),
    ("/udfs", "UDFs"),
    ("/keys", "Keys"),
    ("/observe", "Observe"),
    ("/cluster", "Cluster"),
    ("/cost", "Cost"),
];

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}\
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:18px;align-items:center}\
header b{margin-right:12px}header a{color:#c9d1e0;text-decoration:none}header a.on{color:#fff;border-bottom:2px solid #6ea8fe}\
main{padding:16px 20px}h1{font-size:20px;margin:4px 0 14px}h2{font-size:16px;margin:18px 0 8px}\
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:10px 14px;min-width:150px}\
.card .v{font-size:22px;font-weight:600}.card.bad{border-color:#d9534f}.card.bad .v{color:#b52b27}.card.good .v{color:#2b7a3d}\
table{border-collapse:collapse;background:#fff;width:100%}td,th{border:1px solid #dde1e8;padding:5px 8px;text-align:left;vertical-align:top}\
th{background:#eef1f5}.banner{padding:10px 14px;border-radius:6px;margin:8px 0;background:#fff4d6;border:1px solid #e8c55a}\
.banner.err{background:#fde8e7;border-color:#d9534f}.muted{color:#6b7385}form.inline{display:inline}\
button{padding:3px 10px}svg{background:#fff;border:1px solid #dde1e8}.chart{display:inline-block;margin:0 12px 12px 0;vertical-align:top}";

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: the tab bar with `active` highlighted, the `body`, an automatic refresh every
/// `refresh` seconds (0: none).
pub fn page(title: &str, active: &str, body: &str, refresh: u32) -> String {
    let mut tabs = String::new();
    for (path, label) in TABS {
        let class = if *path == active { " class=\"on\"" } else { "" };
        let _ = write!(tabs, "<a href=\"{path}\"{class}>{label}</a>");
    }
    let refresh = if refresh > 0 {
        format!("<meta http-equiv=\"refresh\" content=\"{refresh}\">")
    } else {
        String::new()
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <title>{} · Layer</title><style>{STYLE}</style></head><body><header><b>Layer</b>{tabs}</header>\
         <main><h1>{}</h1>{body}</main></body></html>",
        esc(title),
        esc(title)
    )
}

/// A card: a label and a big value; `state` is `"good"`, `"bad"` or `""`.
pub fn card(label: &str, value: &str, state: &str) -> String {
    format!(
        "<div class=\"card {state}\"><div class=\"muted\">{}</div><div class=\"v\">{}</div></div>",
        esc(label),
        esc(value)
    )
}

/// A table of already-escaped cells.
pub fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    if rows.is_empty() {
        let _ = write!(
            out,
            "<tr><td colspan=\"{}\" class=\"muted\">none</td></tr>",
            head.len().max(1)
        );
    }
    out.push_str("</table>");
    out
}

/// A notice; `error` styles it as a failure.
pub fn banner(text: &str, error: bool) -> String {
    let class = if error { "banner err" } else { "banner" };
    format!("<div class=\"{class}\">{}</div>", esc(text))
}

/// `12 s ago`, `3 min ago`, `5 h ago`, `2 d ago` from epoch milliseconds.
pub fn ago(ms: u64, now_ms: u64) -> String {
    let s = now_ms.saturating_sub(ms) / 1000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// `512 B`, `1.5 KiB`, `3.2 MiB`, `1.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Now, in epoch milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_humanizes() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(ago(1_000, 61_000), "1 min ago");
        assert_eq!(ago(0, 90_000_000), "1 d ago");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
        let p = page("Keys", "/keys", "<p>x</p>", 0);
        assert!(p.contains("<a href=\"/keys\" class=\"on\">Keys</a>"));
        assert!(!p.contains("http-equiv"));
    }
}
