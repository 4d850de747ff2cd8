//! Projects: the list on the left, the selected project's script summary and outputs on the
//! right.

use std::collections::HashMap;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::{block, empty_state, fmt_bytes, status_role};
use crate::store::{JobStatus, ProjectId};
use crate::tui::state::AppState;
use crate::tui::theme::{Role, Theme};

pub fn draw(f: &mut Frame, area: Rect, state: &AppState, theme: &Theme) {
    let [left, right] = if area.width >= 90 {
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(area)
    } else {
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area)
    };
    let b = block(
        theme,
        format!(" Projects · {} ", state.projects.len()),
        true,
    );
    let inner = b.inner(left);
    f.render_widget(b, left);
    if state.projects.is_empty() {
        empty_state(
            f,
            inner,
            theme,
            &[
                "No projects yet.",
                "",
                "Press n to make one from a script",
                "(YAML, JSON or plain text).",
            ],
        );
    } else {
        list(f, inner, state, theme);
    }
    detail(f, right, state, theme);
}

fn list(f: &mut Frame, area: Rect, state: &AppState, theme: &Theme) {
    // Jobs per project and the newest job's status.
    let mut per: HashMap<ProjectId, (usize, JobStatus)> = HashMap::new();
    for j in &state.jobs {
        let e = per.entry(j.project_id).or_insert((0, j.status));
        e.0 += 1;
        e.1 = j.status;
    }
    let h = usize::from(area.height.saturating_sub(1));
    let mut cursor = state.project_cursor;
    let offset = cursor.scroll_into_view(h);
    let rows: Vec<Row> = state
        .projects
        .iter()
        .enumerate()
        .skip(offset)
        .take(h)
        .map(|(i, p)| {
            let (n, last) = per
                .get(&p.id)
                .map(|(n, s)| (n.to_string(), Some(*s)))
                .unwrap_or(("0".into(), None));
            let row = Row::new(vec![
                Cell::from(p.name.clone()),
                Cell::from(p.channel.clone()),
                Cell::from(n),
                Cell::from(match last {
                    Some(s) => Span::styled(s.as_str(), theme.style(status_role(s))),
                    None => Span::raw(""),
                }),
            ]);
            super::selectable(row, i == cursor.sel, theme)
        })
        .collect();
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Min(10),
                Constraint::Length(14),
                Constraint::Length(4),
                Constraint::Length(9),
            ],
        )
        .header(Row::new(["NAME", "CHANNEL", "JOBS", "LAST"]).style(theme.style(Role::Header)))
        .column_spacing(1),
        area,
    );
}

fn detail(f: &mut Frame, area: Rect, state: &AppState, theme: &Theme) {
    let Some(p) = state.selected_project() else {
        let b = block(theme, " Detail ", false);
        f.render_widget(b, area);
        return;
    };
    let b = block(theme, format!(" {} ", p.name), false);
    let inner = b.inner(area);
    f.render_widget(b, area);
    let mut lines = vec![
        Line::from(vec![
            Span::styled("script    ", theme.style(Role::Dim)),
            Span::raw(p.script_path.clone()),
        ]),
        Line::from(vec![
            Span::styled("channel   ", theme.style(Role::Dim)),
            Span::raw(p.channel.clone()),
        ]),
    ];
    match state.project_detail.as_ref().filter(|d| d.project == p.id) {
        None => lines.push(Line::from(Span::styled("loading…", theme.style(Role::Dim)))),
        Some(d) => {
            match &d.summary {
                Ok(fields) => {
                    for (k, v) in fields {
                        lines.push(Line::from(vec![
                            Span::styled(format!("{k:<10}"), theme.style(Role::Dim)),
                            Span::raw(v.clone()),
                        ]));
                    }
                }
                Err(e) => lines.push(Line::from(Span::styled(
                    format!("script: {e}"),
                    theme.style(Role::Warn),
                ))),
            }
            lines.push(Line::default());
            if d.outputs.is_empty() {
                lines.push(Line::from(Span::styled(
                    "no outputs yet",
                    theme.style(Role::Dim),
                )));
            } else {
                lines.push(Line::from(Span::styled(
                    "outputs",
                    theme.style(Role::Title),
                )));
                for (path, bytes) in &d.outputs {
                    lines.push(Line::from(vec![
                        Span::raw(format!("  {path}")),
                        Span::styled(format!("  {}", fmt_bytes(*bytes)), theme.style(Role::Dim)),
                    ]));
                }
            }
        }
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}
