//! The queue: every job with its stage strip, progress, device, elapsed and ETA; Enter opens a
//! job's detail (stage graph, artifacts, live log).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Cell, Paragraph, Row, Scrollbar, ScrollbarOrientation, ScrollbarState, Table,
};
use ratatui::Frame;

use super::{bar, block, empty_state, fmt_bytes, fmt_duration, status_role};
use crate::store::{EventLevel, TaskStatus};
use crate::tui::state::{AppState, JobView, StageCell};
use crate::tui::theme::{Role, Theme};

pub fn draw(f: &mut Frame, area: Rect, state: &AppState, theme: &Theme) {
    if state.detail_open {
        if let Some(j) = state.selected_job() {
            return detail(f, area, state, j, theme);
        }
    }
    table(f, area, state, theme);
}

fn stage_glyph(s: &StageCell) -> (&'static str, Role) {
    const LEVELS: [&str; 8] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];
    match s.status {
        TaskStatus::Done => ("█", Role::Ok),
        TaskStatus::Cached => ("▓", Role::Ok),
        TaskStatus::Running => {
            let i = ((s.progress.clamp(0.0, 1.0) * 7.0).round()) as usize;
            (LEVELS[i.min(7)], Role::StatusRunning)
        }
        TaskStatus::Pending => ("·", Role::Dim),
        TaskStatus::Failed => ("✗", Role::Error),
        TaskStatus::Cancelled | TaskStatus::Skipped => ("-", Role::Dim),
    }
}

/// The worse of two stages, for strips with more stages than cells.
fn rank(s: TaskStatus) -> u8 {
    match s {
        TaskStatus::Failed => 6,
        TaskStatus::Running => 5,
        TaskStatus::Cancelled => 4,
        TaskStatus::Pending => 3,
        TaskStatus::Skipped => 2,
        TaskStatus::Cached => 1,
        TaskStatus::Done => 0,
    }
}

/// One cell per stage (several stages per cell when the strip is narrower than the job).
fn strip<'a>(job: &JobView, width: usize, theme: &Theme) -> Line<'a> {
    let n = job.stages.len();
    if n == 0 || width == 0 {
        return Line::default();
    }
    let cells = n.min(width);
    let spans: Vec<Span> = (0..cells)
        .map(|c| {
            let (a, b) = (c * n / cells, ((c + 1) * n / cells).max(c * n / cells + 1));
            let worst = job.stages[a..b.min(n)]
                .iter()
                .max_by_key(|s| rank(s.status))
                .expect("non-empty range");
            let (g, role) = stage_glyph(worst);
            Span::styled(g, theme.style(role))
        })
        .collect();
    Line::from(spans)
}

fn table(f: &mut Frame, area: Rect, state: &AppState, theme: &Theme) {
    let sort = format!(
        " sort: {}{} ",
        state.sort.label(),
        if state.sort_reversed { " ↑" } else { "" }
    );
    let title = if state.filter_text.is_empty() {
        format!(" Queue · {} jobs ", state.jobs.len())
    } else {
        format!(
            " Queue · {} of {} jobs · /{} ",
            state.visible.len(),
            state.jobs.len(),
            state.filter_text
        )
    };
    let b = block(theme, title, true).title_bottom(Line::from(sort).right_aligned());
    let inner = b.inner(area);
    f.render_widget(b, area);
    if state.jobs.is_empty() {
        return empty_state(
            f,
            inner,
            theme,
            &[
                "The queue is empty.",
                "",
                "Press 1 then n to make a project from a script,",
                "or from a shell: reelsmith add script.yaml",
            ],
        );
    }
    if state.visible.is_empty() {
        return empty_state(
            f,
            inner,
            theme,
            &["No job matches the filter.", "Esc clears it."],
        );
    }
    let wide = inner.width >= 100;
    let strip_w: u16 = if inner.width >= 120 { 24 } else { 12 };
    let mut widths = vec![
        Constraint::Length(5),
        Constraint::Min(8),
        Constraint::Length(9),
        Constraint::Length(4),
        Constraint::Length(strip_w),
        Constraint::Length(11),
    ];
    let mut header = vec!["ID", "PROJECT", "STATUS", "PRI", "STAGES", "PROGRESS"];
    if wide {
        widths.extend([Constraint::Length(8), Constraint::Length(7)]);
        header.extend(["DEVICE", "LANGS"]);
    }
    widths.extend([Constraint::Length(8), Constraint::Length(8)]);
    header.extend(["ELAPSED", "ETA"]);

    let rows_h = usize::from(inner.height.saturating_sub(1));
    let mut cursor = state.queue;
    let offset = cursor.scroll_into_view(rows_h);
    let now = state.now_ms;
    let rows: Vec<Row> = state
        .visible
        .iter()
        .enumerate()
        .skip(offset)
        .take(rows_h)
        .map(|(pos, &i)| {
            let j = &state.jobs[i];
            let stalled = !j.status.is_terminal() && state.job_stalled(j.id);
            let status = if j.cancel_requested && !j.status.is_terminal() {
                "cancelling".to_string()
            } else if stalled {
                "stalled".to_string()
            } else {
                j.status.as_str().to_string()
            };
            let role = if stalled {
                Role::Warn
            } else {
                status_role(j.status)
            };
            let p = j.progress();
            let mut progress = bar(theme, p, 6);
            progress.push(Span::raw(format!("{:>4.0}%", p * 100.0)));
            let mut cells = vec![
                Cell::from(j.id.to_string()),
                Cell::from(j.name.clone()),
                Cell::from(Span::styled(status, theme.style(role))),
                Cell::from(format!("{:>3}", j.priority)),
                Cell::from(strip(j, usize::from(strip_w), theme)),
                Cell::from(Line::from(progress)),
            ];
            if wide {
                cells.push(Cell::from(j.device_label()));
                cells.push(Cell::from(j.langs.join(",")));
            }
            cells.push(Cell::from(
                j.elapsed_ms(now).map(fmt_duration).unwrap_or_default(),
            ));
            cells.push(Cell::from(j.eta_ms(now).map(fmt_duration).unwrap_or_else(
                || {
                    if j.status.is_terminal() {
                        String::new()
                    } else {
                        "—".into()
                    }
                },
            )));
            let row = Row::new(cells);
            super::selectable(row, pos == cursor.sel, theme)
        })
        .collect();
    let t = Table::new(rows, widths)
        .header(Row::new(header).style(theme.style(Role::Header)))
        .column_spacing(1);
    f.render_widget(t, inner);
    if state.visible.len() > rows_h {
        let mut sb =
            ScrollbarState::new(state.visible.len().saturating_sub(rows_h)).position(offset);
        f.render_stateful_widget(
            Scrollbar::new(ScrollbarOrientation::VerticalRight)
                .begin_symbol(None)
                .end_symbol(None)
                .style(theme.style(Role::Dim)),
            area.inner(ratatui::layout::Margin {
                horizontal: 0,
                vertical: 1,
            }),
            &mut sb,
        );
    }
}

fn task_role(s: TaskStatus) -> Role {
    match s {
        TaskStatus::Done | TaskStatus::Cached => Role::Ok,
        TaskStatus::Running => Role::StatusRunning,
        TaskStatus::Pending => Role::Dim,
        TaskStatus::Failed => Role::Error,
        TaskStatus::Cancelled | TaskStatus::Skipped => Role::StatusCancelled,
    }
}

fn detail(f: &mut Frame, area: Rect, state: &AppState, j: &JobView, theme: &Theme) {
    let title = format!(" Job {} · {} · {} ", j.id, j.name, j.channel);
    let b = block(theme, title, true).title_bottom(
        Line::from(" Esc back · ↑↓ other jobs · p pause · c cancel · r retry ").right_aligned(),
    );
    let inner = b.inner(area);
    f.render_widget(b, area);
    let Some(d) = state.detail.as_ref().filter(|d| d.job.id == j.id) else {
        return empty_state(f, inner, theme, &["loading…"]);
    };
    let now = state.now_ms;
    let mut summary = vec![
        Span::styled(
            j.status.as_str().to_string(),
            theme.style(status_role(j.status)),
        ),
        Span::styled(format!("  priority {}", j.priority), theme.style(Role::Dim)),
    ];
    if let Some(e) = j.elapsed_ms(now) {
        summary.push(Span::raw(format!("  elapsed {}", fmt_duration(e))));
    }
    if let Some(e) = j.eta_ms(now) {
        summary.push(Span::raw(format!("  eta {}", fmt_duration(e))));
    }
    summary.push(Span::styled(
        format!("  out {}", j.out_dir),
        theme.style(Role::Dim),
    ));
    let mut head = vec![Line::from(summary)];
    if let Some(e) = &j.error {
        head.push(Line::from(Span::styled(
            e.clone(),
            theme.style(Role::Error),
        )));
    }
    let log_h = (inner.height / 3).max(3);
    let [top, mid, bottom] = Layout::vertical([
        Constraint::Length(head.len() as u16),
        Constraint::Min(3),
        Constraint::Length(log_h),
    ])
    .areas(inner);
    f.render_widget(Paragraph::new(head), top);

    let wide = mid.width >= 100;
    let rows: Vec<Row> = d
        .tasks
        .iter()
        .map(|t| {
            let mut p = bar(
                theme,
                match t.status {
                    TaskStatus::Done | TaskStatus::Cached => 1.0,
                    _ => t.progress,
                },
                8,
            );
            p.push(Span::raw(" "));
            let elapsed = match (t.status, t.elapsed_ms, t.started_ms) {
                (TaskStatus::Running, _, Some(s)) => fmt_duration(now - s),
                (_, Some(e), _) => fmt_duration(e),
                _ => String::new(),
            };
            let artifact = t
                .artifact_key
                .as_ref()
                .map(|k| match d.artifacts.get(k) {
                    Some((_, bytes)) => format!("{} {}", &k[..k.len().min(10)], fmt_bytes(*bytes)),
                    None => k[..k.len().min(10)].to_string(),
                })
                .unwrap_or_default();
            let after = d
                .deps
                .get(&t.stage)
                .map(|v| v.join(" "))
                .unwrap_or_default();
            let mut cells = vec![
                Cell::from(t.stage.clone()),
                Cell::from(Span::styled(
                    t.status.as_str().to_string(),
                    theme.style(task_role(t.status)),
                )),
                Cell::from(Line::from(p)),
                Cell::from(t.device.map(|d| format!("gpu{d}")).unwrap_or_else(|| {
                    if t.started_ms.is_some() {
                        "cpu".into()
                    } else {
                        String::new()
                    }
                })),
                Cell::from(elapsed),
                Cell::from(t.engine.clone().unwrap_or_default()),
            ];
            if wide {
                cells.push(Cell::from(artifact));
                cells.push(Cell::from(Span::styled(after, theme.style(Role::Dim))));
            }
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(14),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Min(10),
    ];
    let mut header = vec!["STAGE", "STATE", "PROGRESS", "DEV", "TIME", "ENGINE"];
    if wide {
        widths.extend([Constraint::Length(20), Constraint::Min(12)]);
        header.extend(["ARTIFACT", "AFTER"]);
    }
    f.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(theme.style(Role::Header)))
            .column_spacing(1),
        mid,
    );

    let log_block = block(theme, " Log ", false);
    let log_inner = log_block.inner(bottom);
    f.render_widget(log_block, bottom);
    let n = usize::from(log_inner.height);
    let lines: Vec<Line> = d
        .log
        .iter()
        .skip(d.log.len().saturating_sub(n))
        .map(|e| {
            let role = match e.level {
                EventLevel::Info => Role::Text,
                EventLevel::Warn => Role::Warn,
                EventLevel::Error => Role::Error,
            };
            Line::from(vec![
                Span::styled(format!("{} ", clock(e.at_ms)), theme.style(Role::Dim)),
                Span::styled(e.message.clone(), theme.style(role)),
            ])
        })
        .collect();
    f.render_widget(Paragraph::new(lines), log_inner);
}

/// `HH:MM:SS` (UTC) of a timestamp.
fn clock(ms: i64) -> String {
    let s = ms.div_euclid(1000);
    format!(
        "{:02}:{:02}:{:02}",
        s.div_euclid(3600).rem_euclid(24),
        s.div_euclid(60).rem_euclid(60),
        s.rem_euclid(60)
    )
}
