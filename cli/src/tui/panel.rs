//! The band a view shows a failed read in: alone when there is no data, or above the earlier
//! data when a refresh failed.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::widgets::{Paragraph, Wrap};

use super::state::Slot;

/// The error of a failed read as the view shows it.
pub fn error_paragraph(msg: &str, stale: bool) -> Paragraph<'static> {
    let lead = if stale {
        "refresh failed (showing earlier data): "
    } else {
        "error: "
    };
    Paragraph::new(format!("{lead}{msg}"))
        .style(Style::new().fg(Color::Red))
        .wrap(Wrap { trim: true })
}

/// Splits a view's inner area into an error band (when `slot` has an error) and the rest.
pub fn with_error<T>(f: &mut Frame, area: Rect, slot: &Slot<T>) -> Rect {
    let Some(e) = &slot.error else {
        return area;
    };
    let stale = slot.data.is_some();
    let p = error_paragraph(e, stale);
    if !stale {
        f.render_widget(p, area);
        return Rect::default();
    }
    // Wrapped length estimate plus one line of slack for word wrapping (and a gap under it),
    // at most half the view.
    let width = usize::from(area.width.max(1));
    let len = e.chars().count() + "refresh failed (showing earlier data): ".len();
    let lines = (len.div_ceil(width) + 1).min(usize::from(area.height / 2).max(1)) as u16;
    let [band, rest] =
        Layout::vertical([Constraint::Length(lines), Constraint::Min(0)]).areas(area);
    f.render_widget(p, band);
    rest
}
