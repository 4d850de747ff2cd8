//! Models: the built-in engines and what is in the Hugging Face cache, with size, the GPU
//! memory each needs and whether that fits this machine's GPUs.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::{bar, block, empty_state, fmt_bytes};
use crate::tui::catalog::Source;
use crate::tui::state::AppState;
use crate::tui::theme::{Role, Theme};

pub fn draw(f: &mut Frame, area: Rect, state: &AppState, theme: &Theme) {
    let b = block(theme, format!(" Models · {} ", state.models.len()), true);
    let inner = b.inner(area);
    f.render_widget(b, area);
    if state.models.is_empty() {
        return empty_state(f, inner, theme, &["Looking for models…"]);
    }
    let [table_area, note] =
        Layout::vertical([Constraint::Min(2), Constraint::Length(2)]).areas(inner);
    // The biggest GPU decides what can ever run here.
    let biggest = state.gpu.devices.iter().map(|g| g.sample.total).max();
    let size_w = if state.models.iter().any(|m| m.download.is_some()) {
        24
    } else {
        10
    };
    let h = usize::from(table_area.height.saturating_sub(1));
    let mut cursor = state.model_cursor;
    let offset = cursor.scroll_into_view(h);
    let rows: Vec<Row> = state
        .models
        .iter()
        .enumerate()
        .skip(offset)
        .take(h)
        .map(|(i, m)| {
            let (state_text, role) = match (&m.source, m.installed, &m.download) {
                (_, _, Some(d)) if d.queued => ("queued", Role::StatusQueued),
                (_, _, Some(_)) => ("pulling", Role::StatusRunning),
                (Source::BuiltIn, ..) => ("built-in", Role::Ok),
                (_, true, _) => ("installed", Role::Ok),
                (Source::Registry { .. }, false, _) => ("available", Role::Dim),
                (_, false, _) => ("partial", Role::Warn),
            };
            let size = match (&m.download, m.size) {
                (Some(d), _) if d.queued && d.done == 0 => Line::from("waiting"),
                (Some(d), _) => {
                    let mut spans = bar(theme, d.done as f64 / d.total.max(1) as f64, 5);
                    spans.push(Span::raw(format!(
                        " {}/s {}",
                        fmt_bytes(d.bytes_per_s as u64),
                        d.eta_s()
                            .map(|s| super::fmt_duration(s as i64 * 1000))
                            .unwrap_or_default()
                    )));
                    Line::from(spans)
                }
                (None, Some(s)) => Line::from(fmt_bytes(s)),
                (None, None) => Line::from("—"),
            };
            let (fits, fits_role) = if m.vram == 0 {
                ("cpu ok", Role::Ok)
            } else {
                match biggest {
                    None => ("no gpu", Role::Warn),
                    Some(t) if m.vram <= t => ("fits", Role::Ok),
                    Some(_) => ("too big", Role::Error),
                }
            };
            let origin = match &m.source {
                Source::BuiltIn => m.stage.clone().unwrap_or_default(),
                Source::Registry { .. } => "registry".into(),
                Source::HfCache(_) => "hf cache".into(),
            };
            let row = Row::new(vec![
                Cell::from(m.id.clone()),
                Cell::from(m.kind.clone()),
                Cell::from(origin),
                Cell::from(Span::styled(state_text, theme.style(role))),
                Cell::from(size),
                Cell::from(if m.vram == 0 {
                    "—".to_string()
                } else {
                    format!("≈{}", fmt_bytes(m.vram))
                }),
                Cell::from(Span::styled(fits, theme.style(fits_role))),
            ]);
            super::selectable(row, i == cursor.sel, theme)
        })
        .collect();
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Min(16),
                Constraint::Length(6),
                Constraint::Length(10),
                Constraint::Length(9),
                Constraint::Length(size_w),
                Constraint::Length(10),
                Constraint::Length(7),
            ],
        )
        .header(
            Row::new(["MODEL", "KIND", "FOR", "STATE", "SIZE", "VRAM", "FITS"])
                .style(theme.style(Role::Header)),
        )
        .column_spacing(1),
        table_area,
    );
    let gpu = match biggest {
        Some(t) => format!("largest GPU {}", fmt_bytes(t)),
        None => "no GPU: built-in engines run on the CPU".into(),
    };
    f.render_widget(
        Paragraph::new(vec![
            Line::from(Span::styled(
                format!("{gpu} · every stage has a built-in engine that needs no weights"),
                theme.style(Role::Dim),
            )),
            Line::from(Span::styled(
                "p pulls the selected model into the Hugging Face cache (resumable) · D removes it · R rescans",
                theme.style(Role::Dim),
            )),
        ]),
        note,
    );
}
