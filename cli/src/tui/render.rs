//! Draws an [`App`] into a frame: the title bar (where the TUI reads from), the view tabs, the
//! current list or detail, and a status line (data age, refresh interval, the last error, the
//! keys). Lists are tables with humanized cells cut to a width with `…`; an empty list says so and
//! names its command twin; a failed read is shown in the view, above any earlier data.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState, Wrap};

use crate::client::QueueStatus;
use crate::config::mask;

use super::detail;
use super::human::{age_str, bytes, count, cut, opt_age_ms};
use super::panel::with_error;
use super::state::{App, ListData, Screen, View};

/// The widest a name or id cell gets before it is cut with `…`.
pub const NAME_WIDTH: usize = 40;
/// The widest any other cell gets.
const CELL_WIDTH: usize = 28;

/// Draws the whole screen.
pub fn draw(f: &mut Frame, app: &App) {
    let [title, tabs, main, status, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(title_line(app), title);
    f.render_widget(tab_line(app.screen.view()), tabs);
    match &app.screen {
        Screen::List(v) => draw_list(f, main, app, *v),
        Screen::Detail(v, id) => detail::draw(f, main, app, *v, id),
    }
    f.render_widget(status_line(app), status);
    f.render_widget(help_line(&app.screen), help);
}

fn title_line(app: &App) -> Paragraph<'static> {
    let env = match &app.header.env_name {
        Some(n) => format!("env {n} · "),
        None => String::new(),
    };
    Paragraph::new(Line::from(vec![
        Span::styled(
            " layer ",
            Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED),
        ),
        Span::raw(format!(" {env}{} · read-only", app.header.base_url)),
    ]))
}

fn tab_line(current: View) -> Paragraph<'static> {
    let mut spans = vec![Span::raw(" ")];
    for v in View::ALL {
        let label = format!("[{}] {}", v.key(), v.title());
        let style = if v == current {
            Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED)
        } else {
            Style::new()
        };
        spans.push(Span::styled(label, style));
        spans.push(Span::raw("  "));
    }
    Paragraph::new(Line::from(spans))
}

fn status_line(app: &App) -> Paragraph<'static> {
    let at = match &app.screen {
        Screen::List(v) => app.list(*v).at_ms,
        Screen::Detail(..) => app.detail.at_ms,
    };
    let mut parts = vec![match at {
        Some(t) => format!("updated {}", opt_age_ms(Some(t), app.now_ms)),
        None => "not loaded yet".into(),
    }];
    parts.push(format!(
        "refresh every {}",
        super::human::span(app.interval.as_millis() as u64)
    ));
    if app.loading() {
        parts.push("loading…".into());
    }
    Paragraph::new(format!(" {}", parts.join(" · "))).style(Style::new().fg(Color::DarkGray))
}

fn help_line(screen: &Screen) -> Paragraph<'static> {
    let text = match screen {
        Screen::List(_) => " ↑/↓ select · enter detail · i/f/p/k/e views · r refresh · esc/q quit",
        Screen::Detail(..) => " ↑/↓ scroll · esc/q back · i/f/p/k/e views · r refresh",
    };
    Paragraph::new(text).style(Style::new().add_modifier(Modifier::DIM))
}

fn draw_list(f: &mut Frame, area: Rect, app: &App, v: View) {
    let slot = app.list(v);
    let n = slot.data.as_ref().map(ListData::len);
    let title = match n {
        Some(n) => format!(" {} ({n}) ", v.title()),
        None => format!(" {} ", v.title()),
    };
    let block = Block::bordered()
        .title(title)
        .title_bottom(format!(" raw values: {} ", v.twin()));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let rest = with_error(f, inner, slot);
    let Some(data) = &slot.data else {
        if slot.error.is_none() {
            f.render_widget(Paragraph::new("Loading…"), rest);
        }
        return;
    };
    if data.len() == 0 {
        let what = v.title().to_lowercase();
        f.render_widget(
            Paragraph::new(format!("No {what}.")).wrap(Wrap { trim: true }),
            rest,
        );
        return;
    }
    let (headers, rows) = cells(data, app.now_ms);
    let widths = column_widths(&headers, &rows);
    let table = Table::new(
        rows.into_iter().map(Row::new),
        widths.into_iter().map(|w| Constraint::Length(w as u16)),
    )
    .header(Row::new(headers).style(Style::new().add_modifier(Modifier::BOLD)))
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .highlight_symbol("> ")
    .column_spacing(2);
    let mut state = TableState::default().with_selected(Some(app.selected(v)));
    f.render_stateful_widget(table, rest, &mut state);
}

/// Each column as wide as its widest cell (cells are already cut).
fn column_widths(headers: &[&str], rows: &[Vec<String>]) -> Vec<usize> {
    let mut w: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.chars().count());
            }
        }
    }
    w
}

fn yes_no(b: Option<bool>) -> String {
    match b {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => "-".into(),
    }
}

/// Pending, processing, failed and rate cells; `-` without a status.
fn queue(s: Option<&QueueStatus>) -> [String; 4] {
    match s {
        Some(s) => [
            count(s.pending_count),
            count(s.processing_count),
            count(s.failed_count),
            format!("{:.1}", s.indexed_rate_per_min),
        ],
        None => std::array::from_fn(|_| "-".to_string()),
    }
}

/// Headers and humanized, cut cells of a list.
pub fn cells(data: &ListData, now: u64) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let name = |s: &str| cut(s, NAME_WIDTH);
    let cell = |s: String| cut(&s, CELL_WIDTH);
    match data {
        ListData::Indexes(v) => (
            vec![
                "NAME",
                "ROWS",
                "SIZE",
                "STABLE",
                "STABLE AS OF",
                "CACHE",
                "LAST WRITE",
                "ERROR",
            ],
            v.iter()
                .map(|e| {
                    vec![
                        name(&e.name),
                        e.row_count.map_or("-".into(), count),
                        e.size_bytes.map_or("-".into(), bytes),
                        yes_no(e.is_stable),
                        opt_age_ms(e.stable_as_of_ms, now),
                        cell(match &e.cache_state {
                            Some(c) if c.warm_inflight => format!("{} (warming)", c.state),
                            Some(c) => c.state.clone(),
                            None => "-".into(),
                        }),
                        opt_age_ms(e.last_write_ms, now),
                        cell(e.metadata_error.clone().unwrap_or_default()),
                    ]
                })
                .collect(),
        ),
        ListData::Functions(v) => (
            vec![
                "ID",
                "PAUSED",
                "PENDING",
                "PROCESSING",
                "FAILED",
                "SWEEPS",
                "RATE/MIN",
                "UPDATED",
            ],
            v.iter()
                .map(|r| {
                    let [p, pr, fl, rate] = queue(r.status.as_ref());
                    let sweeps = r
                        .status
                        .as_ref()
                        .and_then(|s| s.discovery.as_ref())
                        .map_or("-".into(), |d| count(d.sweeps_completed));
                    vec![
                        name(&r.udf.id),
                        yes_no(Some(r.udf.paused)),
                        p,
                        pr,
                        fl,
                        sweeps,
                        rate,
                        age_str(Some(&r.udf.updated_at), now, "-"),
                    ]
                })
                .collect(),
        ),
        ListData::Pipelines(v) => (
            vec![
                "ID",
                "TARGET",
                "STATUS",
                "PENDING",
                "PROCESSING",
                "FAILED",
                "RATE/MIN",
                "CREATED",
            ],
            v.iter()
                .map(|r| {
                    let [p, pr, fl, rate] = queue(r.status.as_ref());
                    vec![
                        name(&r.pipeline.id),
                        name(&r.pipeline.target_namespace),
                        cell(
                            r.status
                                .as_ref()
                                .and_then(|s| s.status.clone())
                                .unwrap_or_else(|| "-".into()),
                        ),
                        p,
                        pr,
                        fl,
                        rate,
                        age_str(Some(&r.pipeline.created_at), now, "-"),
                    ]
                })
                .collect(),
        ),
        ListData::Keys(v) => (
            vec![
                "NAME",
                "KEY ID",
                "OWNER",
                "PHASE",
                "TARGETS",
                "EXPIRES",
                "LAST SEEN",
            ],
            v.iter()
                .map(|k| {
                    let targets: Vec<&str> = k.entitlements.keys().map(String::as_str).collect();
                    vec![
                        name(&k.name),
                        name(&k.key_id),
                        cell(k.owner.clone().unwrap_or_else(|| "-".into())),
                        cell(k.phase.clone()),
                        cell(if targets.is_empty() {
                            "-".into()
                        } else {
                            targets.join(",")
                        }),
                        age_str(k.expires_at.as_deref(), now, "never"),
                        age_str(k.last_seen_at.as_deref(), now, "never"),
                    ]
                })
                .collect(),
        ),
        ListData::Environments(v) => (
            vec![
                "ACTIVE",
                "NAME",
                "BASE URL",
                "API KEY",
                "KUBE CONTEXT",
                "KUBE NAMESPACE",
                "IN USE",
            ],
            v.iter()
                .map(|e| {
                    let o = |s: &Option<String>| cell(s.clone().unwrap_or_else(|| "-".into()));
                    vec![
                        if e.active { "*" } else { "" }.into(),
                        name(&e.name),
                        name(e.entry.base_url.as_deref().unwrap_or("-")),
                        e.entry.api_key.as_deref().map_or("-".into(), mask),
                        o(&e.entry.kube_context),
                        o(&e.entry.kube_namespace),
                        if e.in_use { "yes" } else { "" }.into(),
                    ]
                })
                .collect(),
        ),
    }
}
