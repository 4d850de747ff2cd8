//! Watching the file system for work.
//!
//! Today this is the drop-folder inbox ([`Inbox`]): a script file dropped into `<data>/inbox/`
//! becomes a queued job and is moved to `inbox/done/` or `inbox/rejected/`. Config hot reload is
//! meant to live next to it later (a sibling module sharing [`WatchError`]).

mod inbox;

pub use inbox::{Inbox, Outcome, WatchError, SCRIPT_EXTENSIONS};
