//! The keymap: [`Command::TABLE`]'s default keys, overlaid by `<config>/keymap.toml`.
//!
//! ```toml
//! [global]
//! quit = ["q", "ctrl-q"]
//! [queue]
//! cancel_job = ["x", "delete"]
//! ```
//!
//! A command named in the file gets exactly the keys listed there (an empty list unbinds it).
//! A key bound to two commands in the same context is an error that names both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crossterm::event::KeyEvent;

use super::action::{Command, Context};
use super::keys::KeySpec;

#[derive(Debug, thiserror::Error)]
pub enum KeymapError {
    #[error("{path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
}

/// Keys per command, and the reverse lookup per context.
#[derive(Clone, Debug)]
pub struct Keymap {
    keys: BTreeMap<Command, Vec<KeySpec>>,
}

impl Default for Keymap {
    fn default() -> Self {
        let keys = Command::TABLE
            .iter()
            .map(|c| {
                let keys = c
                    .keys
                    .iter()
                    .map(|k| {
                        k.parse::<KeySpec>()
                            .unwrap_or_else(|e| panic!("default key {k:?}: {e}"))
                    })
                    .collect();
                (c.command, keys)
            })
            .collect();
        Keymap { keys }
    }
}

impl Keymap {
    /// The defaults, overlaid by `<config_dir>/keymap.toml` when it exists.
    pub fn load(config_dir: Option<&Path>) -> Result<Keymap, KeymapError> {
        let mut map = Keymap::default();
        let Some(dir) = config_dir else {
            return Ok(map);
        };
        let path = dir.join("keymap.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(map),
            Err(e) => {
                return Err(KeymapError::Invalid {
                    path,
                    msg: e.to_string(),
                })
            }
        };
        map.overlay(&text)
            .map_err(|msg| KeymapError::Invalid { path, msg })?;
        Ok(map)
    }

    /// Applies a `keymap.toml` text; the error names the field and what to write instead.
    pub fn overlay(&mut self, text: &str) -> Result<(), String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let contexts: Vec<&str> = Context::ALL.iter().map(|c| c.as_str()).collect();
        for (ctx_name, commands) in &table {
            let Some(ctx) = Context::ALL
                .iter()
                .copied()
                .find(|c| c.as_str() == ctx_name)
            else {
                return Err(format!(
                    "[{ctx_name}]: unknown section; use one of {}",
                    contexts.join(", ")
                ));
            };
            let Some(commands) = commands.as_table() else {
                return Err(format!("{ctx_name}: expected a table of command = [keys]"));
            };
            for (name, keys) in commands {
                let field = format!("{ctx_name}.{name}");
                let Some(cmd) = Command::by_name(ctx, name) else {
                    let names: Vec<&str> = Command::TABLE
                        .iter()
                        .filter(|c| c.context == ctx)
                        .map(|c| c.name)
                        .collect();
                    return Err(format!(
                        "{field}: unknown command; [{ctx_name}] has {}",
                        names.join(", ")
                    ));
                };
                let list: Vec<&toml::Value> = match keys {
                    toml::Value::String(_) => vec![keys],
                    toml::Value::Array(a) => a.iter().collect(),
                    _ => return Err(format!("{field}: expected a list of keys like [\"q\"]")),
                };
                let mut specs = Vec::new();
                for k in list {
                    let Some(s) = k.as_str() else {
                        return Err(format!("{field}: keys are strings like \"ctrl-c\""));
                    };
                    specs.push(s.parse::<KeySpec>().map_err(|e| format!("{field}: {e}"))?);
                }
                self.keys.insert(cmd, specs);
            }
        }
        self.check_conflicts()
    }

    fn check_conflicts(&self) -> Result<(), String> {
        for ctx in Context::ALL {
            let mut seen: BTreeMap<String, &'static str> = BTreeMap::new();
            for info in Command::TABLE.iter().filter(|c| c.context == ctx) {
                for k in self.keys_of(info.command) {
                    if let Some(other) = seen.insert(k.to_string(), info.name) {
                        return Err(format!(
                            "{}: key {k} is bound to both {other} and {}; give one of them another key",
                            ctx.as_str(),
                            info.name
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn keys_of(&self, cmd: Command) -> &[KeySpec] {
        self.keys.get(&cmd).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The command a key means in `context` (looked up there first, then globally).
    pub fn lookup(&self, context: Option<Context>, ev: &KeyEvent) -> Option<Command> {
        let find = |ctx: Context| {
            Command::TABLE
                .iter()
                .filter(|c| c.context == ctx)
                .find(|c| self.keys_of(c.command).iter().any(|k| k.matches(ev)))
                .map(|c| c.command)
        };
        context.and_then(find).or_else(|| find(Context::Global))
    }

    /// `"q"`, `"↑/k"`: the keys of a command for help and hints.
    pub fn label(&self, cmd: Command) -> String {
        let keys = self.keys_of(cmd);
        if keys.is_empty() {
            return "unbound".into();
        }
        keys.iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Footer hints for a context: `(keys, hint)` for its commands and the global ones.
    pub fn hints(&self, context: Option<Context>) -> Vec<(String, &'static str)> {
        let mut out = Vec::new();
        for info in Command::TABLE {
            let applies = Some(info.context) == context || info.context == Context::Global;
            if let (true, Some(h)) = (applies, info.hint) {
                if let Some(k) = self.keys_of(info.command).first() {
                    out.push((k.to_string(), h));
                }
            }
        }
        // The pane's own commands first: they are what the user is looking for.
        out.sort_by_key(|(_, h)| {
            !Command::TABLE
                .iter()
                .any(|c| c.hint == Some(h) && Some(c.context) == context)
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyCode, KeyEventKind, KeyEventState, KeyModifiers};

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent {
            code,
            modifiers: mods,
            kind: KeyEventKind::Press,
            state: KeyEventState::NONE,
        }
    }

    #[test]
    fn defaults_parse_and_do_not_conflict() {
        let map = Keymap::default();
        map.check_conflicts().unwrap();
        assert_eq!(
            map.lookup(
                Some(Context::Queue),
                &key(KeyCode::Char('q'), KeyModifiers::NONE)
            ),
            Some(Command::Quit)
        );
        assert_eq!(
            map.lookup(
                Some(Context::Queue),
                &key(KeyCode::Char('p'), KeyModifiers::NONE)
            ),
            Some(Command::PauseJob)
        );
        assert_eq!(
            map.lookup(
                Some(Context::Models),
                &key(KeyCode::Char('p'), KeyModifiers::NONE)
            ),
            Some(Command::Pull),
            "the pane's own binding wins"
        );
        assert_eq!(
            map.lookup(
                Some(Context::Projects),
                &key(KeyCode::Enter, KeyModifiers::NONE)
            ),
            Some(Command::ShowJobs)
        );
        assert_eq!(
            map.lookup(None, &key(KeyCode::Enter, KeyModifiers::NONE)),
            Some(Command::Open)
        );
        assert_eq!(
            map.lookup(None, &key(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Command::ForceQuit)
        );
        assert_eq!(
            map.lookup(None, &key(KeyCode::Char('p'), KeyModifiers::NONE)),
            None,
            "queue keys do nothing on the GPU pane"
        );
    }

    #[test]
    fn a_user_file_rebinds_and_unbinds() {
        let mut map = Keymap::default();
        map.overlay("[queue]\ncancel_job = [\"x\", \"delete\"]\n[global]\ntoggle_mouse = []\n")
            .unwrap();
        assert_eq!(
            map.lookup(
                Some(Context::Queue),
                &key(KeyCode::Char('x'), KeyModifiers::NONE)
            ),
            Some(Command::CancelJob)
        );
        assert_eq!(
            map.lookup(
                Some(Context::Queue),
                &key(KeyCode::Char('c'), KeyModifiers::NONE)
            ),
            None
        );
        assert_eq!(map.label(Command::ToggleMouse), "unbound");
        assert_eq!(map.label(Command::CancelJob), "x/Del");
    }

    #[test]
    fn mistakes_name_the_field_and_the_choices() {
        let mut map = Keymap::default();
        let e = map.overlay("[queue]\ncancle_job = [\"x\"]\n").unwrap_err();
        assert!(
            e.contains("queue.cancle_job") && e.contains("cancel_job"),
            "{e}"
        );
        let e = map.overlay("[qeueu]\n").unwrap_err();
        assert!(e.contains("qeueu") && e.contains("queue"), "{e}");
        let e = map.overlay("[queue]\nsort = [\"ctrl-\"]\n").unwrap_err();
        assert!(e.contains("queue.sort"), "{e}");
        let e = Keymap::default()
            .overlay("[queue]\nsort = [\"c\"]\n")
            .unwrap_err();
        assert!(e.contains("cancel_job") && e.contains("sort"), "{e}");
    }

    #[test]
    fn a_keymap_file_in_the_config_dir_is_read() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("keymap.toml"),
            "[global]\nquit = [\"ctrl-q\"]\n",
        )
        .unwrap();
        let map = Keymap::load(Some(d.path())).unwrap();
        assert_eq!(map.label(Command::Quit), "C-q");
        std::fs::write(d.path().join("keymap.toml"), "[global]\nquit = 3\n").unwrap();
        let e = Keymap::load(Some(d.path())).unwrap_err().to_string();
        assert!(
            e.contains("keymap.toml") && e.contains("global.quit"),
            "{e}"
        );
    }
}
