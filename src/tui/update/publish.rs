//! The publish pane's part of the reducer: publications arriving from the store (saying how
//! the ones that were running ended), and retry/cancel of the selected one.

use crate::store::{PublicationRow, PublicationStatus};

use super::super::state::{AppState, Confirm, Level, Overlay};
use super::{say, Effect};

/// How a publication is named in messages: `youtube video en (12)`.
pub fn label(p: &PublicationRow) -> String {
    format!("{} {} {} ({})", p.platform, p.kind, p.lang, p.id)
}

/// New publications from the store; the ones that were active last time and ended since are
/// reported on the status line.
pub fn arrived(state: &mut AppState, rows: Vec<PublicationRow>) {
    for p in &rows {
        let was_active = state
            .publications
            .iter()
            .any(|o| o.id == p.id && o.status.is_active());
        if !was_active || p.status.is_active() {
            continue;
        }
        match p.status {
            PublicationStatus::Live => {
                let msg = format!(
                    "{} is live{}",
                    label(p),
                    p.remote_id
                        .as_deref()
                        .map(|r| format!(" as {r}"))
                        .unwrap_or_default()
                );
                say(state, Level::Info, msg);
            }
            PublicationStatus::Failed => {
                let msg = format!(
                    "{} failed: {}",
                    label(p),
                    p.error.as_deref().unwrap_or("no reason given")
                );
                say(state, Level::Error, msg);
            }
            _ => {
                let msg = format!("{}: {}", label(p), p.status.as_str());
                say(state, Level::Warn, msg);
            }
        }
    }
    state.publications = rows;
    state.publish_cursor.clamp(state.publications.len());
}

/// `r`: queue the selected failed or cancelled publication again.
pub fn retry(state: &mut AppState, fx: &mut Vec<Effect>) {
    let Some(p) = state.publications.get(state.publish_cursor.sel) else {
        return;
    };
    if matches!(
        p.status,
        PublicationStatus::Failed | PublicationStatus::Cancelled
    ) {
        fx.push(Effect::RetryPublication(p.id));
    } else {
        let msg = format!(
            "{} is {}: only failed or cancelled publications are retried",
            label(p),
            p.status.as_str()
        );
        say(state, Level::Warn, msg);
    }
}

/// `c`: ask before stopping the selected publication.
pub fn cancel(state: &mut AppState) {
    let Some(p) = state.publications.get(state.publish_cursor.sel) else {
        return;
    };
    if p.status.is_active() {
        state.overlay = Overlay::Confirm(Confirm::CancelPublication(p.id, label(p)));
    } else {
        let msg = format!("{} is {}: nothing to stop", label(p), p.status.as_str());
        say(state, Level::Warn, msg);
    }
}
