//! Detail views: one item's fields as aligned `label  value` lines (humanized, with the raw
//! timestamp or byte count in parentheses), scrolled by the arrow keys. The same fields as the
//! command twins (`index get`, `udf get`, `pipeline get`, `keys get`, `env show`).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use serde_json::Value;

use crate::client::{ApiKey, GetUdf, QueueStatus};
use crate::config::mask;
use crate::reads::vector_dim;

use super::human::{age_and_raw, age_ms, bytes, count, opt_age_ms, span};
use super::panel::with_error;
use super::state::{App, DetailData, EnvRow, IndexDetail, PipelineRow, View};

/// Draws the open detail view.
pub fn draw(f: &mut Frame, area: Rect, app: &App, v: View, id: &str) {
    let noun = match v {
        View::Indexes => "Index",
        View::Functions => "Function",
        View::Pipelines => "Pipeline",
        View::Keys => "Key",
        View::Environments => "Environment",
    };
    let block = Block::bordered()
        .title(format!(" {noun} {id} "))
        .title_bottom(format!(" raw values: {} ", v.detail_twin()));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let rest = with_error(f, inner, &app.detail);
    let Some(d) = &app.detail.data else {
        if app.detail.error.is_none() {
            f.render_widget(Paragraph::new("Loading…"), rest);
        }
        return;
    };
    let lines = lines(d, app.now_ms);
    f.render_widget(Paragraph::new(lines).scroll((app.detail_scroll, 0)), rest);
}

/// A detail's lines: fields, then any multi-line section.
pub fn lines(d: &DetailData, now: u64) -> Vec<Line<'static>> {
    let (fields, extra) = match d {
        DetailData::Index(x) => index(x, now),
        DetailData::Function(x) => function(x, now),
        DetailData::Pipeline(x) => (pipeline(x, now), Vec::new()),
        DetailData::Key(x) => key(x, now),
        DetailData::Environment(x) => (environment(x), Vec::new()),
    };
    let w = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out: Vec<Line<'static>> = fields
        .into_iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(
                    format!("{k:<w$}  "),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(v),
            ])
        })
        .collect();
    for (title, body) in extra {
        out.push(Line::raw(""));
        out.push(Line::styled(
            title,
            Style::new().add_modifier(Modifier::BOLD),
        ));
        out.extend(body.into_iter().map(|l| Line::raw(format!("  {l}"))));
    }
    out
}

type Fields = Vec<(&'static str, String)>;
type Sections = Vec<(String, Vec<String>)>;

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn yes_no(b: Option<bool>) -> String {
    match b {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => "-".into(),
    }
}

fn size(n: u64) -> String {
    if n < 1024 {
        bytes(n)
    } else {
        format!("{} ({} bytes)", bytes(n), count(n))
    }
}

fn index(x: &IndexDetail, now: u64) -> (Fields, Sections) {
    let m = &x.meta;
    let e = x.entry.clone().unwrap_or_default();
    let layer = m.layer.clone().unwrap_or_default();
    let stable = layer.stable_as_of.or(e.stable_as_of_ms);
    let index = m.index.clone().or(e.index.clone()).unwrap_or_default();
    let cache = match &e.cache_state {
        Some(c) => format!(
            "{}{}, warmed through {}",
            c.state,
            if c.warm_inflight {
                " (warm in flight)"
            } else {
                ""
            },
            opt_age_ms(c.warmed_through_ms, now)
        ),
        None => "-".into(),
    };
    let mut attrs: Vec<(String, String)> = m
        .schema
        .iter()
        .map(|(k, v)| {
            let t = v
                .get("type")
                .and_then(Value::as_str)
                .or(v.as_str())
                .map_or_else(|| v.to_string(), str::to_string);
            (k.clone(), t)
        })
        .collect();
    if attrs.is_empty() {
        attrs = e
            .schema_summary
            .as_ref()
            .and_then(|s| s.fields.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|f| (f, String::new()))
            .collect();
    }
    attrs.sort();
    let dim = e
        .schema_summary
        .as_ref()
        .and_then(|s| s.vector_dim)
        .or_else(|| vector_dim(&m.schema));
    let last_write = match (
        e.last_write_ms,
        m.last_write_at.as_deref().or(m.updated_at.as_deref()),
    ) {
        (Some(ms), _) => age_ms(ms, now),
        (None, s) => age_and_raw(s, now, "-"),
    };
    let mut fields: Fields = vec![
        ("name", m.id.clone()),
        ("rows", count(m.approx_row_count)),
        ("size", size(m.approx_logical_bytes)),
        (
            "schema",
            format!(
                "{} attributes{}",
                attrs.len(),
                dim.map(|d| format!(", vector dim {d}")).unwrap_or_default()
            ),
        ),
        ("last write", last_write),
        ("stable as of", opt_age_ms(stable, now)),
        (
            "stable lag",
            stable.map_or("-".into(), |s| span(now.saturating_sub(s))),
        ),
        ("stable", yes_no(layer.is_stable.or(e.is_stable))),
        ("indexed", yes_no(layer.indexed)),
        (
            "index lag rows",
            layer.index_lag_rows.map_or("-".into(), count),
        ),
        ("index status", opt(index.status.as_deref())),
        ("unindexed", index.unindexed_bytes.map_or("-".into(), size)),
        ("cache", cache),
    ];
    if let Some(err) = &e.metadata_error {
        fields.push(("metadata error", err.clone()));
    }
    if let Some(err) = &x.listing_error {
        fields.push(("listing", format!("unavailable: {err}")));
    }
    let w = attrs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let body = attrs
        .into_iter()
        .map(|(k, t)| format!("{k:<w$}  {t}").trim_end().to_string())
        .collect();
    (fields, vec![("Attributes".into(), body)])
}

fn queue_fields(s: Option<&QueueStatus>) -> Fields {
    match s {
        Some(s) => vec![
            ("status", opt(s.status.as_deref())),
            ("pending", count(s.pending_count)),
            ("processing", count(s.processing_count)),
            ("failed", count(s.failed_count)),
            ("rate/min", format!("{:.1}", s.indexed_rate_per_min)),
            (
                "rate window",
                span(s.rate_window_seconds.saturating_mul(1000)),
            ),
        ],
        None => vec![(
            "queue",
            "no status yet (no worker has staged into it)".into(),
        )],
    }
}

fn function(g: &GetUdf, now: u64) -> (Fields, Sections) {
    let u = &g.udf;
    let s = &g.status;
    let mut fields: Fields = vec![
        ("id", u.id.clone()),
        ("paused", yes_no(Some(u.paused))),
        (
            "version",
            opt(u.spec.get("version").and_then(Value::as_str)),
        ),
        (
            "active namespaces",
            if s.active_namespaces.is_empty() {
                "-".into()
            } else {
                s.active_namespaces.join(", ")
            },
        ),
    ];
    fields.extend(queue_fields(Some(s)));
    fields.push((
        "discovery sweeps",
        s.discovery
            .as_ref()
            .map_or("-".into(), |d| count(d.sweeps_completed)),
    ));
    fields.push((
        "last sweep",
        age_and_raw(
            s.discovery
                .as_ref()
                .and_then(|d| d.last_completed_at.as_deref()),
            now,
            "-",
        ),
    ));
    fields.push(("created", age_and_raw(Some(&u.created_at), now, "-")));
    fields.push(("updated", age_and_raw(Some(&u.updated_at), now, "-")));
    let spec = serde_json::to_string_pretty(&u.spec).unwrap_or_else(|_| u.spec.to_string());
    (
        fields,
        vec![("Spec".into(), spec.lines().map(str::to_string).collect())],
    )
}

fn pipeline(r: &PipelineRow, now: u64) -> Fields {
    let p = &r.pipeline;
    let mut fields: Fields = vec![
        ("id", p.id.clone()),
        ("target namespace", p.target_namespace.clone()),
        ("distance metric", p.distance_metric.clone()),
        ("created", age_and_raw(Some(&p.created_at), now, "-")),
    ];
    fields.extend(queue_fields(r.status.as_ref()));
    fields
}

fn key(k: &ApiKey, now: u64) -> (Fields, Sections) {
    let fields: Fields = vec![
        ("key id", k.key_id.clone()),
        ("name", k.name.clone()),
        ("owner", opt(k.owner.as_deref())),
        ("description", opt(k.description.as_deref())),
        ("phase", k.phase.clone()),
        ("created", age_and_raw(Some(&k.created_at), now, "-")),
        ("expires after", opt(k.expires_after.as_deref())),
        (
            "expires",
            age_and_raw(k.expires_at.as_deref(), now, "never"),
        ),
        ("revoked", age_and_raw(k.revoked_at.as_deref(), now, "no")),
        (
            "last seen",
            age_and_raw(k.last_seen_at.as_deref(), now, "never"),
        ),
    ];
    let body = if k.entitlements.is_empty() {
        vec!["-".to_string()]
    } else {
        k.entitlements
            .iter()
            .map(|(t, e)| format!("{t}  {e}"))
            .collect()
    };
    (fields, vec![("Entitlements".into(), body)])
}

fn environment(e: &EnvRow) -> Fields {
    vec![
        ("name", e.name.clone()),
        ("active", yes_no(Some(e.active))),
        ("in use", yes_no(Some(e.in_use))),
        ("base url", opt(e.entry.base_url.as_deref())),
        (
            "api key",
            e.entry.api_key.as_deref().map_or("-".into(), mask),
        ),
        ("kube context", opt(e.entry.kube_context.as_deref())),
        ("kube namespace", opt(e.entry.kube_namespace.as_deref())),
    ]
}
