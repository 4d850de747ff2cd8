//! What is drawn over the panes: help, confirmations, the quit prompt, the new-project form.

use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::{block, centered};
use crate::tui::action::{Command, Context};
use crate::tui::keymap::Keymap;
use crate::tui::state::{AppState, Confirm, FormField, ProjectForm};
use crate::tui::theme::{Role, Theme};

fn popup(f: &mut Frame, w: u16, h: u16, theme: &Theme, title: &str) -> Rect {
    let area = centered(f.area(), w, h);
    f.render_widget(Clear, area);
    let b = block(theme, format!(" {title} "), true).style(theme.style(Role::Overlay));
    let inner = b.inner(area);
    f.render_widget(b, area);
    inner
}

/// Every binding, grouped by where it applies, straight from the keymap.
pub fn help_lines(keymap: &Keymap) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for ctx in Context::ALL {
        let title = match ctx {
            Context::Global => "Everywhere",
            Context::Projects => "Projects",
            Context::Queue => "Queue",
            Context::Models => "Models",
            Context::Preview => "Preview",
            Context::Publish => "Publish",
        };
        let cmds: Vec<_> = Command::TABLE.iter().filter(|c| c.context == ctx).collect();
        if cmds.is_empty() {
            continue;
        }
        out.push((None, title.to_string()));
        for c in cmds {
            out.push((Some(keymap.label(c.command)), c.help.to_string()));
        }
        if ctx == Context::Preview {
            out.push((Some("←/→".into()), "Previous / next image".into()));
        }
    }
    out.push((None, "New-project form".into()));
    for (k, h) in [
        ("↑/↓", "Move between fields"),
        (
            "←/→",
            "Change the choice (channel, language, priority, quality)",
        ),
        ("Space", "Toggle the language under the cursor"),
        ("Tab", "Complete the script path"),
        ("Enter", "Queue the project"),
        ("Esc", "Close the form"),
    ] {
        out.push((Some(k.into()), h.into()));
    }
    out
}

pub fn help(f: &mut Frame, scroll: u16, theme: &Theme, keymap: &Keymap) {
    let w = f.area().width.saturating_sub(4).min(76);
    let h = f.area().height.saturating_sub(2);
    let inner = popup(f, w, h, theme, "Help · ↑↓ scroll · Esc close");
    let lines: Vec<Line> = help_lines(keymap)
        .into_iter()
        .map(|(k, text)| match k {
            None => Line::from(Span::styled(
                text,
                theme.style(Role::Title).add_modifier(Modifier::BOLD),
            )),
            Some(k) => Line::from(vec![
                Span::styled(format!("  {k:<14}"), theme.style(Role::KeyHint)),
                Span::styled(text, theme.style(Role::Text)),
            ]),
        })
        .collect();
    let max = (lines.len() as u16).saturating_sub(inner.height);
    f.render_widget(Paragraph::new(lines).scroll((scroll.min(max), 0)), inner);
}

pub fn confirm(f: &mut Frame, c: &Confirm, theme: &Theme) {
    let (title, text) = match c {
        Confirm::CancelJob(id, name) => (
            "Cancel job",
            format!(
                "Cancel job {id} ({name})? Its running stage stops within a second; \
                 finished stages stay cached, so `retry` resumes it."
            ),
        ),
        Confirm::CancelPublication(_, what) => (
            "Cancel publication",
            format!(
                "Stop {what}? An upload keeps what the platform has (`r` resumes it); a video \
                 already sent stays on the platform."
            ),
        ),
        Confirm::RemoveModel(id, repo) => (
            "Remove model",
            format!(
                "Delete {id} ({repo}) from the Hugging Face cache? Python tools sharing the cache \
                 lose it too; `p` downloads it again."
            ),
        ),
    };
    let inner = popup(f, 60, 7, theme, title);
    f.render_widget(
        Paragraph::new(vec![
            Line::from(text),
            Line::default(),
            Line::from(vec![
                Span::styled(" y ", theme.style(Role::KeyHint)),
                Span::raw("yes   "),
                Span::styled(" n ", theme.style(Role::KeyHint)),
                Span::raw("no"),
            ]),
        ])
        .wrap(Wrap { trim: true }),
        inner,
    );
}

pub fn quit(f: &mut Frame, state: &AppState, theme: &Theme) {
    let n = state.running_jobs();
    let inner = popup(f, 66, 10, theme, "Quit");
    f.render_widget(
        Paragraph::new(vec![
            Line::from(format!(
                "{n} job(s) are rendering in this studio. What should happen to them?"
            )),
            Line::default(),
            Line::from(vec![
                Span::styled(" k ", theme.style(Role::KeyHint)),
                Span::raw("keep rendering headless (a background `reelsmith run`"),
            ]),
            Line::from("    takes the queue over; logs in the data dir)"),
            Line::from(vec![
                Span::styled(" s ", theme.style(Role::KeyHint)),
                Span::raw("stop: running stages checkpoint and resume next time"),
            ]),
            Line::from(vec![
                Span::styled(" Esc ", theme.style(Role::KeyHint)),
                Span::raw("stay in the studio"),
            ]),
        ])
        .wrap(Wrap { trim: false }),
        inner,
    );
}

pub fn form(f: &mut Frame, form: &ProjectForm, state: &AppState, theme: &Theme) {
    let w = f.area().width.saturating_sub(4).min(78);
    let h = (14 + form.completions.len().min(6) as u16).min(f.area().height);
    let inner = popup(f, w, h, theme, "New project · Enter queue · Esc close");
    let focus = |field: FormField| {
        if form.field == field {
            theme.style(Role::Selection)
        } else {
            theme.style(Role::Text)
        }
    };
    let label = |text: &str, field: FormField| {
        Span::styled(
            format!("{text:<10}"),
            if form.field == field {
                theme.style(Role::Accent).add_modifier(Modifier::BOLD)
            } else {
                theme.style(Role::Dim)
            },
        )
    };
    let mut lines = Vec::new();
    let cursor = |field: FormField| if form.field == field { "▏" } else { "" };
    lines.push(Line::from(vec![
        label("script", FormField::Script),
        Span::styled(
            format!("{}{}", form.script, cursor(FormField::Script)),
            focus(FormField::Script),
        ),
    ]));
    for c in form.completions.iter().take(6) {
        lines.push(Line::from(Span::styled(
            format!("          {c}"),
            theme.style(Role::Dim),
        )));
    }
    if form.completions.len() > 6 {
        lines.push(Line::from(Span::styled(
            format!("          … {} more", form.completions.len() - 6),
            theme.style(Role::Dim),
        )));
    }
    lines.push(Line::from(vec![
        label("channel", FormField::Channel),
        Span::styled(
            format!(
                "‹ {} ›",
                form.channel.as_deref().unwrap_or("from the script")
            ),
            focus(FormField::Channel),
        ),
    ]));
    let mut langs = vec![label("languages", FormField::Languages)];
    for (i, l) in state.languages.iter().enumerate() {
        let on = form.langs.contains(l);
        let mut style = if on {
            theme.style(Role::Ok).add_modifier(Modifier::BOLD)
        } else {
            theme.style(Role::Dim)
        };
        if form.field == FormField::Languages && i == form.lang_cursor {
            style = theme.style(Role::Selection);
        }
        langs.push(Span::styled(
            format!("{}{}", if on { "●" } else { "○" }, l),
            style,
        ));
        langs.push(Span::raw(" "));
    }
    lines.push(Line::from(langs));
    if form.langs.is_empty() {
        lines.push(Line::from(Span::styled(
            "          none ticked: the languages the script names",
            theme.style(Role::Dim),
        )));
    } else {
        lines.push(Line::default());
    }
    lines.push(Line::from(vec![
        label("priority", FormField::Priority),
        Span::styled(format!("‹ {} ›", form.priority), focus(FormField::Priority)),
        Span::styled("  higher runs first", theme.style(Role::Dim)),
    ]));
    lines.push(Line::from(vec![
        label("quality", FormField::Quality),
        Span::styled(
            if form.final_quality {
                "‹ final ›"
            } else {
                "‹ draft ›"
            },
            focus(FormField::Quality),
        ),
        Span::styled(
            if form.final_quality {
                "  1080p, slower encode"
            } else {
                "  720p, fast"
            },
            theme.style(Role::Dim),
        ),
    ]));
    lines.push(Line::from(vec![
        label("output", FormField::Out),
        Span::styled(
            format!("{}{}", form.out, cursor(FormField::Out)),
            focus(FormField::Out),
        ),
    ]));
    lines.push(Line::default());
    match &form.error {
        Some(e) => lines.push(Line::from(Span::styled(
            e.clone(),
            theme.style(Role::Error),
        ))),
        None => lines.push(Line::from(Span::styled(
            "↑↓ field · ←→ choose · Space toggle language · Tab complete path",
            theme.style(Role::Dim),
        ))),
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}
