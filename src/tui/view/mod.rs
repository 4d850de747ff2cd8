//! Drawing: reads the state, never changes it. One file per pane, overlays in `overlay.rs`.

mod gpu;
mod models;
mod overlay;
pub mod preview;
mod projects;
mod publish;
mod queue;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph, Row};
use ratatui::Frame;

use super::action::{Context, Pane};
use super::keymap::Keymap;
use super::state::{AppState, Level, Mode, Overlay};
use super::theme::{Role, Theme};
use crate::store::JobStatus;

pub use preview::Images;

/// What drawing needs besides the state.
pub struct ViewCtx<'a> {
    pub theme: &'a Theme,
    pub keymap: &'a Keymap,
    pub images: &'a mut Images,
}

/// The screen's parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Areas {
    pub header: Rect,
    pub body: Rect,
    pub footer: Rect,
}

/// Header (tabs and counts), body (the pane), footer (hints or the last message).
pub fn layout(size: (u16, u16)) -> Areas {
    let full = Rect::new(0, 0, size.0, size.1);
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(full);
    Areas {
        header,
        body,
        footer,
    }
}

/// The tab labels as drawn in the header, with their column ranges.
fn tabs() -> Vec<(Pane, String, u16, u16)> {
    let mut x = 0u16;
    let mut out = Vec::new();
    for (i, p) in Pane::ALL.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, p.title());
        let w = label.chars().count() as u16;
        out.push((*p, label, x, x + w));
        x += w + 1;
    }
    out
}

/// The first column of a pane's tab in the header.
pub fn tab_x(pane: Pane) -> u16 {
    tabs()
        .into_iter()
        .find(|(p, ..)| *p == pane)
        .map_or(0, |(_, _, a, _)| a)
}

/// The pane whose tab is at this column of the header.
pub fn tab_at(column: u16) -> Option<Pane> {
    tabs()
        .into_iter()
        .find(|(_, _, a, b)| column >= *a && column < *b)
        .map(|(p, ..)| p)
}

pub fn status_role(s: JobStatus) -> Role {
    match s {
        JobStatus::Queued => Role::StatusQueued,
        JobStatus::Running => Role::StatusRunning,
        JobStatus::Paused => Role::StatusPaused,
        JobStatus::Done => Role::StatusDone,
        JobStatus::Failed => Role::StatusFailed,
        JobStatus::Cancelled => Role::StatusCancelled,
    }
}

/// `1.5 GiB`, `320 MiB`, `12 KiB`.
pub fn fmt_bytes(b: u64) -> String {
    const K: f64 = 1024.0;
    let f = b as f64;
    if f >= K * K * K {
        format!("{:.1} GiB", f / (K * K * K))
    } else if f >= K * K {
        format!("{:.0} MiB", f / (K * K))
    } else if f >= K {
        format!("{:.0} KiB", f / K)
    } else {
        format!("{b} B")
    }
}

/// `0:07`, `12:03`, `1:02:03`.
pub fn fmt_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// A bordered block with the theme's colours; `focus` highlights the border.
pub fn block<'a>(theme: &Theme, title: impl Into<Line<'a>>, focus: bool) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(theme.style(if focus {
            Role::BorderFocus
        } else {
            Role::Border
        }))
        .title(title)
        .title_style(theme.style(Role::Title))
        .style(theme.style(Role::Text))
}

/// A horizontal bar of `width` cells, `frac` filled, with eighth-block precision.
pub fn bar<'a>(theme: &Theme, frac: f64, width: usize) -> Vec<Span<'a>> {
    const PART: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let frac = frac.clamp(0.0, 1.0);
    let eighths = (frac * width as f64 * 8.0).round() as usize;
    let full = eighths / 8;
    let part = eighths % 8;
    let mut done = "█".repeat(full);
    done.push_str(PART[part]);
    let used = full + usize::from(part > 0);
    vec![
        Span::styled(done, theme.style(Role::ProgressDone)),
        Span::styled(
            "░".repeat(width.saturating_sub(used)),
            theme.style(Role::ProgressTodo),
        ),
    ]
}

/// Draws the whole screen.
pub fn draw(f: &mut Frame, state: &AppState, ctx: &mut ViewCtx) {
    let areas = layout((f.area().width, f.area().height));
    f.render_widget(
        Block::default().style(ctx.theme.style(Role::Text)),
        f.area(),
    );
    header(f, areas.header, state, ctx.theme);
    match state.pane {
        Pane::Projects => projects::draw(f, areas.body, state, ctx.theme),
        Pane::Queue => queue::draw(f, areas.body, state, ctx.theme),
        Pane::Models => models::draw(f, areas.body, state, ctx.theme),
        Pane::Gpu => gpu::draw(f, areas.body, state, ctx.theme),
        Pane::Preview => preview::draw(f, areas.body, state, ctx.theme, ctx.images),
        Pane::Publish => publish::draw(f, areas.body, state, ctx.theme),
    }
    footer(f, areas.footer, state, ctx.theme, ctx.keymap);
    match &state.overlay {
        Overlay::None => {}
        Overlay::Help { scroll } => overlay::help(f, *scroll, ctx.theme, ctx.keymap),
        Overlay::Confirm(c) => overlay::confirm(f, c, ctx.theme),
        Overlay::Quit => overlay::quit(f, state, ctx.theme),
        Overlay::NewProject(form) => overlay::form(f, form, state, ctx.theme),
    }
}

fn header(f: &mut Frame, area: Rect, state: &AppState, theme: &Theme) {
    let mut spans = Vec::new();
    for (p, label, ..) in tabs() {
        let role = if p == state.pane {
            Role::TabActive
        } else {
            Role::Tab
        };
        spans.push(Span::styled(label, theme.style(role)));
        spans.push(Span::raw(" "));
    }
    let tabs_width: usize = spans.iter().map(|s| s.width()).sum();
    let counts = state.counts();
    let mut right: Vec<Span> = Vec::new();
    let n = |s: JobStatus| counts.get(&s).copied().unwrap_or(0);
    for (s, word) in [
        (JobStatus::Running, "running"),
        (JobStatus::Queued, "queued"),
        (JobStatus::Paused, "paused"),
        (JobStatus::Failed, "failed"),
    ] {
        if n(s) > 0 {
            if !right.is_empty() {
                right.push(Span::styled(" · ", theme.style(Role::Dim)));
            }
            right.push(Span::styled(
                format!("{} {word}", n(s)),
                theme.style(status_role(s)),
            ));
        }
    }
    if state.queue_paused {
        right.push(Span::styled(
            "  ⏸ queue paused",
            theme.style(Role::Warn).add_modifier(Modifier::BOLD),
        ));
    }
    if let Mode::Monitor { pid } = &state.mode {
        let who = pid.map_or("another process".to_string(), |p| format!("pid {p}"));
        right.push(Span::styled(
            format!("  monitor of {who}"),
            theme.style(Role::Info),
        ));
    }
    if state.detached {
        right.push(Span::styled("  detached", theme.style(Role::Warn)));
    }
    right.push(Span::raw(" "));
    let right_width: usize = right.iter().map(|s| s.width()).sum();
    let room = usize::from(area.width).saturating_sub(tabs_width);
    if right_width <= room {
        spans.push(Span::raw(" ".repeat(room - right_width)));
        spans.extend(right);
    }
    f.render_widget(
        Paragraph::new(Line::from(spans)).style(theme.style(Role::Header)),
        area,
    );
}

fn footer(f: &mut Frame, area: Rect, state: &AppState, theme: &Theme, keymap: &Keymap) {
    let line = if let Some(m) = &state.message {
        let role = match m.level {
            Level::Info => Role::Info,
            Level::Warn => Role::Warn,
            Level::Error => Role::Error,
        };
        Line::from(vec![
            Span::styled(format!(" {} ", m.text), theme.style(role)),
            Span::styled(" Esc", theme.style(Role::KeyHint)),
            Span::styled(" dismiss", theme.style(Role::Dim)),
        ])
    } else if state.filter_editing {
        Line::from(vec![
            Span::styled(" /", theme.style(Role::KeyHint)),
            Span::styled(state.filter_text.clone(), theme.style(Role::Text)),
            Span::styled("▏", theme.style(Role::Accent)),
            Span::styled(
                "   Enter keep · Esc clear · status: channel: lang: project: id:",
                theme.style(Role::Dim),
            ),
        ])
    } else {
        let mut spans = vec![Span::raw(" ")];
        let ctx = Context::of(state.pane);
        let mut width = 1;
        for (key, hint) in keymap.hints(ctx) {
            let w = key.chars().count() + hint.chars().count() + 3;
            if width + w > usize::from(area.width) {
                break;
            }
            width += w;
            spans.push(Span::styled(key, theme.style(Role::KeyHint)));
            spans.push(Span::styled(format!(" {hint}  "), theme.style(Role::Dim)));
        }
        Line::from(spans)
    };
    f.render_widget(Paragraph::new(line).style(theme.style(Role::Text)), area);
}

/// A rectangle of `w`×`h` centred in `area` (clipped to it).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// A dim, centred line for empty states.
pub fn empty_state(f: &mut Frame, area: Rect, theme: &Theme, lines: &[&str]) {
    let text: Vec<Line> = lines
        .iter()
        .map(|l| Line::from(Span::styled(l.to_string(), theme.style(Role::Dim))))
        .collect();
    let h = text.len() as u16;
    let inner = centered(area, area.width.saturating_sub(4), h);
    f.render_widget(
        Paragraph::new(text).alignment(ratatui::layout::Alignment::Center),
        inner,
    );
}

/// A table row, highlighted when it is the selected one.
pub fn selectable<'a>(row: Row<'a>, selected: bool, theme: &Theme) -> Row<'a> {
    if selected {
        row.style(theme.style(Role::Selection))
    } else {
        row
    }
}
