//! Publish: the uploads to YouTube, TikTok and Instagram — queued, uploading (with progress),
//! processing on the platform, waiting (for a quota reset or a back-off, until when), live,
//! failed (with the platform's reason) or cancelled — and the selected one's details.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::{bar, block, empty_state, fmt_bytes, fmt_duration};
use crate::store::{PublicationRow, PublicationStatus};
use crate::tui::state::AppState;
use crate::tui::theme::{Role, Theme};

fn role(s: PublicationStatus) -> Role {
    match s {
        PublicationStatus::Queued => Role::StatusQueued,
        PublicationStatus::Uploading | PublicationStatus::Processing => Role::StatusRunning,
        PublicationStatus::Waiting => Role::StatusPaused,
        PublicationStatus::Live => Role::StatusDone,
        PublicationStatus::Failed => Role::StatusFailed,
        PublicationStatus::Cancelled => Role::StatusCancelled,
    }
}

/// The progress column: a bar while bytes move, the hold while waiting, the platform's id
/// once it has the video.
fn progress<'a>(p: &PublicationRow, now_ms: i64, theme: &Theme) -> Line<'a> {
    match p.status {
        PublicationStatus::Uploading | PublicationStatus::Queued if p.bytes_done > 0 => {
            let total = p.bytes_total.unwrap_or(0).max(1);
            let mut spans = bar(theme, p.bytes_done as f64 / total as f64, 8);
            spans.push(Span::raw(format!(
                " {:>3}% {}",
                p.bytes_done * 100 / total,
                fmt_bytes(total)
            )));
            Line::from(spans)
        }
        PublicationStatus::Uploading => Line::from("starting"),
        PublicationStatus::Waiting => match p.not_before_ms {
            Some(t) if t > now_ms => Line::from(format!("in {}", fmt_duration(t - now_ms))),
            _ => Line::from("due"),
        },
        _ => Line::from(p.remote_id.clone().unwrap_or_else(|| "—".into())),
    }
}

pub fn draw(f: &mut Frame, area: Rect, state: &AppState, theme: &Theme) {
    let active = state
        .publications
        .iter()
        .filter(|p| p.status.is_active())
        .count();
    let b = block(
        theme,
        format!(
            " Publish · {} active · {} shown ",
            active,
            state.publications.len()
        ),
        true,
    );
    let inner = b.inner(area);
    f.render_widget(b, area);
    if state.publications.is_empty() {
        return empty_state(
            f,
            inner,
            theme,
            &[
                "Nothing published yet.",
                "`reelsmith publish JOB --to youtube` or a script's publish: block queues uploads;",
                "the scheduler runs them and they show here.",
            ],
        );
    }
    let [table_area, detail] =
        Layout::vertical([Constraint::Min(2), Constraint::Length(4)]).areas(inner);
    let h = usize::from(table_area.height.saturating_sub(1));
    let mut cursor = state.publish_cursor;
    let offset = cursor.scroll_into_view(h);
    let rows: Vec<Row> = state
        .publications
        .iter()
        .enumerate()
        .skip(offset)
        .take(h)
        .map(|(i, p)| {
            let project = std::path::Path::new(&p.source)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let row = Row::new(vec![
                Cell::from(p.id.to_string()),
                Cell::from(format!("{}/{}", p.platform, p.account)),
                Cell::from(format!("{} {}", p.kind, p.lang)),
                Cell::from(project),
                Cell::from(Span::styled(p.status.as_str(), theme.style(role(p.status)))),
                Cell::from(progress(p, state.now_ms, theme)),
                Cell::from(Span::styled(
                    p.error.clone().unwrap_or_default(),
                    theme.style(if p.status == PublicationStatus::Failed {
                        Role::Error
                    } else {
                        Role::Dim
                    }),
                )),
            ]);
            super::selectable(row, i == cursor.sel, theme)
        })
        .collect();
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(4),
                Constraint::Length(16),
                Constraint::Length(8),
                Constraint::Length(12),
                Constraint::Length(10),
                Constraint::Length(22),
                Constraint::Min(10),
            ],
        )
        .header(
            Row::new(["ID", "TO", "WHAT", "PROJECT", "STATE", "PROGRESS", "NOTE"])
                .style(theme.style(Role::Header)),
        )
        .column_spacing(1),
        table_area,
    );
    let lines = match state.publications.get(state.publish_cursor.sel) {
        Some(p) => {
            let mut l = vec![Line::from(vec![
                Span::styled(format!("{} ", p.file), theme.style(Role::Text)),
                Span::styled(
                    format!(
                        "· attempt {}{}",
                        p.attempts,
                        p.owner_pid
                            .map(|o| format!(" · run by pid {o}"))
                            .unwrap_or_default()
                    ),
                    theme.style(Role::Dim),
                ),
            ])];
            if let Some(e) = &p.error {
                l.push(Line::from(Span::styled(
                    e.clone(),
                    theme.style(if p.status == PublicationStatus::Failed {
                        Role::Error
                    } else {
                        Role::Warn
                    }),
                )));
            }
            l
        }
        None => Vec::new(),
    };
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), detail);
}
