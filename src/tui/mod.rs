//! The studio: a ratatui TUI over the store and the scheduler — projects, the queue, models,
//! GPUs and previews, keyboard first, over SSH and inside tmux.
//!
//! The Elm shape: [`action::Action`]s arrive in one loop ([`app`]), [`update::update`] turns
//! them into a new [`state::AppState`] plus [`update::Effect`]s, and [`view`] draws the state.
//! Everything the studio does goes through the store, so a second studio (or the CLI) on the
//! same data dir sees it and can do the same.

pub mod action;
pub mod app;
pub mod bench;
pub mod catalog;
pub mod data;
pub mod keymap;
pub mod keys;
pub mod state;
pub mod theme;
pub mod update;
pub mod view;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_publish;

pub use app::{run, Studio, StudioOptions};
