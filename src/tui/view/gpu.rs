//! GPUs: one gauge per device splitting memory into this studio's reservations, its actual
//! use, other processes and free; utilisation, temperature, power and five minutes of history.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline};
use ratatui::Frame;

use super::{block, empty_state, fmt_bytes};
use crate::tui::state::{AppState, GpuView};
use crate::tui::theme::{Role, Theme};

pub fn draw(f: &mut Frame, area: Rect, state: &AppState, theme: &Theme) {
    if let Some(reason) = &state.gpu.cpu_only {
        let b = block(theme, " GPU · CPU only ", true);
        let inner = b.inner(area);
        f.render_widget(b, area);
        let lines = [
            "CPU only".to_string(),
            String::new(),
            reason.clone(),
            String::new(),
            "Stages run on the CPU with the built-in engines.".to_string(),
            "Install NVIDIA drivers (libnvidia-ml) to use GPUs; CUDA_VISIBLE_DEVICES picks them."
                .into(),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        return empty_state(f, inner, theme, &refs);
    }
    if state.gpu.devices.is_empty() {
        let b = block(theme, " GPU ", true);
        let inner = b.inner(area);
        f.render_widget(b, area);
        return empty_state(f, inner, theme, &["waiting for the first sample…"]);
    }
    let n = state.gpu.devices.len() as u16;
    // Full blocks (gauge, legend, 2 rows of history) when they fit, compact ones otherwise.
    let full = area.height / n >= 7;
    let each = if full { (area.height / n).min(9) } else { 4 };
    let mut rects = Vec::new();
    let mut y = area.y;
    for _ in 0..n {
        if y + each > area.bottom() {
            break;
        }
        rects.push(Rect::new(area.x, y, area.width, each));
        y += each;
    }
    let hidden = state.gpu.devices.len() - rects.len();
    for (g, r) in state.gpu.devices.iter().zip(rects) {
        device(f, r, g, state, theme, full);
    }
    if hidden > 0 && y < area.bottom() {
        f.render_widget(
            Paragraph::new(Span::styled(
                format!(" {hidden} more GPU(s): make the terminal taller"),
                theme.style(Role::Dim),
            )),
            Rect::new(area.x, y, area.width, 1),
        );
    }
}

fn device(f: &mut Frame, area: Rect, g: &GpuView, state: &AppState, theme: &Theme, full: bool) {
    let s = &g.sample;
    let mut title = format!(" GPU {} · {} ", s.index, s.name);
    if let Some(u) = s.utilization {
        title.push_str(&format!("· {u}% "));
    }
    if let Some(t) = s.temperature {
        title.push_str(&format!("· {t}°C "));
    }
    if let Some(p) = s.power_watts {
        title.push_str(&format!("· {p:.0} W "));
    }
    let b = block(theme, title, false);
    let inner = b.inner(area);
    f.render_widget(b, area);
    if inner.height == 0 || inner.width < 10 {
        return;
    }
    let reserved = state
        .gpu
        .ledger
        .as_ref()
        .and_then(|l| l.devices.iter().find(|d| d.index == s.index))
        .map_or(0, |d| d.reserved);
    let total = s.total.max(1);
    let ours = g.ours.min(s.used);
    let other = s.used.saturating_sub(ours);
    // Reserved but not (yet) in use is shown on top of the studio's actual use.
    let promised = reserved.saturating_sub(ours).min(s.free);
    let free = s.free.saturating_sub(promised);
    let w = usize::from(inner.width);
    let cells = |bytes: u64| ((bytes as f64 / total as f64) * w as f64).round() as usize;
    let (c_ours, c_prom, c_other) = (cells(ours), cells(promised), cells(other));
    let c_free = w.saturating_sub(c_ours + c_prom + c_other);
    let gauge = Line::from(vec![
        Span::styled("█".repeat(c_ours), theme.style(Role::GaugeUsed)),
        Span::styled("▒".repeat(c_prom), theme.style(Role::GaugeReserved)),
        Span::styled("█".repeat(c_other), theme.style(Role::GaugeOther)),
        Span::styled("░".repeat(c_free), theme.style(Role::GaugeFree)),
    ]);
    let legend = Line::from(vec![
        Span::styled("█", theme.style(Role::GaugeUsed)),
        Span::raw(format!(" studio {}  ", fmt_bytes(ours))),
        Span::styled("▒", theme.style(Role::GaugeReserved)),
        Span::raw(format!(" reserved {}  ", fmt_bytes(reserved))),
        Span::styled("█", theme.style(Role::GaugeOther)),
        Span::raw(format!(" other {}  ", fmt_bytes(other))),
        Span::styled("░", theme.style(Role::GaugeFree)),
        Span::raw(format!(
            " free {} of {}",
            fmt_bytes(free),
            fmt_bytes(s.total)
        )),
    ]);
    let [gauge_area, legend_area, hist] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(inner);
    f.render_widget(Paragraph::new(gauge), gauge_area);
    f.render_widget(Paragraph::new(legend), legend_area);
    if !full || hist.height == 0 {
        return;
    }
    let [label, spark] =
        Layout::horizontal([Constraint::Length(12), Constraint::Min(1)]).areas(hist);
    let width = usize::from(spark.width);
    let data: Vec<u64> = g
        .used_history
        .iter()
        .skip(g.used_history.len().saturating_sub(width))
        .copied()
        .collect();
    f.render_widget(
        Paragraph::new(vec![
            Line::from(Span::styled("memory", theme.style(Role::Dim))),
            Line::from(Span::styled(
                format!("{}s", g.used_history.len()),
                theme.style(Role::Dim),
            )),
        ]),
        label,
    );
    f.render_widget(
        Sparkline::default()
            .data(&data)
            .max((s.total >> 20).max(1))
            .style(theme.style(Role::Sparkline)),
        spark,
    );
}
