//! Publishing finished videos to YouTube, TikTok and Instagram from a headless server: the
//! accounts (OAuth tokens in owner-only files), what a render's output folder offers to
//! publish, and the runner that turns queued publications into uploads that survive a killed
//! process, a reboot or a dropped network. The protocols are `reelsmith_publish`'s.

pub mod accounts;
pub mod plan;
pub mod runner;
pub mod social;
pub mod source;
