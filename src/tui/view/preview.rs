//! Preview: the selected job's keyframes and thumbnails drawn in the terminal — kitty, sixel or
//! iTerm2 graphics where the terminal has them, half-blocks everywhere else (tmux included).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph};
use ratatui::Frame;
use ratatui_image::picker::Picker;
use ratatui_image::protocol::StatefulProtocol;
use ratatui_image::StatefulImage;

use super::{block, empty_state};
use crate::tui::state::AppState;
use crate::tui::theme::{Role, Theme};

/// Decoded images ready to draw, by path (a few at a time).
pub struct Images {
    picker: Picker,
    cache: HashMap<PathBuf, Result<StatefulProtocol, String>>,
}

impl Images {
    const KEEP: usize = 12;

    pub fn new(picker: Picker) -> Images {
        Images {
            picker,
            cache: HashMap::new(),
        }
    }

    /// Half-blocks: works in every terminal (and in tests).
    pub fn halfblocks() -> Images {
        Images::new(Picker::halfblocks())
    }

    /// What the terminal supports; half-blocks inside tmux or when the terminal does not answer.
    pub fn detect() -> Images {
        let in_tmux = std::env::var_os("TMUX").is_some();
        let picker = if in_tmux {
            Picker::halfblocks()
        } else {
            Picker::from_query_stdio().unwrap_or_else(|_| Picker::halfblocks())
        };
        Images::new(picker)
    }

    pub fn protocol_name(&self) -> String {
        format!("{:?}", self.picker.protocol_type()).to_lowercase()
    }

    fn get(&mut self, path: &Path) -> &mut Result<StatefulProtocol, String> {
        if !self.cache.contains_key(path) && self.cache.len() >= Self::KEEP {
            self.cache.clear();
        }
        let picker = &self.picker;
        self.cache.entry(path.to_path_buf()).or_insert_with(|| {
            let img = image::ImageReader::open(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .with_guessed_format()
                .map_err(|e| format!("{}: {e}", path.display()))?
                .decode()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(picker.new_resize_protocol(img))
        })
    }

    /// Forgets decoded images (files may have been rewritten).
    pub fn clear(&mut self) {
        self.cache.clear();
    }
}

pub fn draw(f: &mut Frame, area: Rect, state: &AppState, theme: &Theme, images: &mut Images) {
    let p = &state.preview;
    let title = match p.job.and_then(|id| state.job(id)) {
        Some(j) => format!(" Preview · job {} · {} ", j.id, j.name),
        None => " Preview ".into(),
    };
    let b = block(theme, title, true);
    let inner = b.inner(area);
    f.render_widget(b, area);
    if p.job.is_none() {
        return empty_state(
            f,
            inner,
            theme,
            &[
                "Nothing to preview.",
                "Select a job in the queue (2) or a project (1), then press 5.",
            ],
        );
    }
    if p.images.is_empty() {
        return empty_state(
            f,
            inner,
            theme,
            &["No keyframes or thumbnails yet: they appear as the job draws them."],
        );
    }
    let list_w = if inner.width >= 60 { 24 } else { 14 };
    let [list_area, image_area] =
        Layout::horizontal([Constraint::Length(list_w), Constraint::Min(1)]).areas(inner);
    let items: Vec<ListItem> = p
        .images
        .iter()
        .map(|i| ListItem::new(i.label.clone()))
        .collect();
    let mut ls = ListState::default().with_selected(Some(p.sel));
    f.render_stateful_widget(
        List::new(items)
            .highlight_style(theme.style(Role::Selection))
            .style(theme.style(Role::Text)),
        list_area,
        &mut ls,
    );
    let Some(sel) = p.images.get(p.sel) else {
        return;
    };
    let [img_area, caption] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(image_area);
    match images.get(&sel.path) {
        Ok(proto) => f.render_stateful_widget(StatefulImage::default(), img_area, proto),
        Err(e) => f.render_widget(
            Paragraph::new(Span::styled(e.clone(), theme.style(Role::Error))),
            img_area,
        ),
    }
    f.render_widget(
        Paragraph::new(Line::from(Span::styled(
            format!(
                " {} · ←/→ other images",
                sel.path
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ),
            theme.style(Role::Dim),
        ))),
        caption,
    );
}
