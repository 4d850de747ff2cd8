//! reelsmith: a terminal studio that turns scripts into finished videos on local GPUs.
//!
//! The library holds everything; `main.rs` only parses the command line and dispatches to
//! [`cli`]. See `DESIGN.md` in the shared folder for the map.

pub mod captions;
pub mod cli;
pub mod config;
pub mod engines;
pub mod gpu;
pub mod highlights;
pub mod hub;
pub mod media;
pub mod pipeline;
pub mod publish;
pub(crate) mod rt;
pub mod scheduler;
pub mod script;
pub mod stages;
pub mod store;
pub mod tui;
pub mod watch;
