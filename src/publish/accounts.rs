//! The platform accounts reelsmith publishes with: one file per account,
//! `<data>/accounts/<platform>/<name>.json`, mode 0600 in a 0700 folder, holding the OAuth
//! client (id and secret) and the tokens. Written whole or not at all (a temp file renamed);
//! never printed or logged (the types' `Debug` hides the secrets and nothing here formats
//! them). Tokens are refreshed ahead of their expiry and written back.
//!
//! The OS keyring is not used: a headless GPU server reached over SSH has no Secret Service
//! session (D-Bus), so the data dir with owner-only permissions is where tokens live.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reelsmith_publish::oauth::{self, ClientSecrets, OAuthError, Token};
use reelsmith_publish::{Client, Endpoints, Platform};
use serde::{Deserialize, Serialize};

/// One account: its platform, its name here, the OAuth client and the tokens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Account {
    pub platform: Platform,
    pub name: String,
    pub secrets: ClientSecrets,
    pub token: Token,
    /// How it was authorised (`device` or `loopback`).
    pub flow: String,
    pub created_ms: i64,
    /// The platform's name for the account (channel title, user name), when known.
    #[serde(default)]
    pub display: Option<String>,
    /// Instagram: the professional account's Instagram user id the Graph API posts as.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// The folder of `platform`'s accounts.
pub fn dir(data: &Path, platform: Platform) -> PathBuf {
    data.join("accounts").join(platform.as_str())
}

/// Whether `name` can be a file name here: letters, digits, `-`, `_`, `.`, not starting
/// with a dot, at most 64.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn path_of(data: &Path, platform: Platform, name: &str) -> Result<PathBuf, String> {
    if !valid_name(name) {
        return Err(format!(
            "account name {name:?}: use letters, digits, -, _ and . (at most 64, not starting \
             with a dot)"
        ));
    }
    Ok(dir(data, platform).join(format!("{name}.json")))
}

/// Writes `account` (0600, atomically).
pub fn save(data: &Path, account: &Account) -> Result<PathBuf, String> {
    let path = path_of(data, account.platform, &account.name)?;
    let d = dir(data, account.platform);
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    for p in [data.join("accounts"), d.clone()] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let tmp = path.with_extension("json.part");
    let text = serde_json::to_vec_pretty(account).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Reads an account; the error says how to add it.
pub fn load(data: &Path, platform: Platform, name: &str) -> Result<Account, String> {
    let path = path_of(data, platform, name)?;
    let text = std::fs::read_to_string(&path).map_err(|_| {
        let known = list(data, Some(platform))
            .into_iter()
            .map(|a| a.name)
            .collect::<Vec<_>>();
        format!(
            "unknown {platform} account {name:?}{}; `reelsmith accounts add {platform}` adds one",
            if known.is_empty() {
                String::new()
            } else {
                format!(" (known: {})", known.join(", "))
            }
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not an account file: {e}", path.display()))
}

/// Every account (of `platform`), by platform and name.
pub fn list(data: &Path, platform: Option<Platform>) -> Vec<Account> {
    let mut out = Vec::new();
    for p in Platform::ALL {
        if platform.is_some_and(|q| q != p) {
            continue;
        }
        let Ok(rd) = std::fs::read_dir(dir(data, p)) else {
            continue;
        };
        let mut names: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        for f in names {
            if let Some(a) = std::fs::read_to_string(&f)
                .ok()
                .and_then(|t| serde_json::from_str::<Account>(&t).ok())
            {
                out.push(a);
            }
        }
    }
    out
}

/// The account to use on `platform`: `name`, else the only one. With several and no name the
/// choice is the user's: refused, naming them.
pub fn pick(data: &Path, platform: Platform, name: Option<&str>) -> Result<Account, String> {
    if let Some(n) = name {
        return load(data, platform, n);
    }
    let mut all = list(data, Some(platform));
    match all.len() {
        0 => Err(format!(
            "no {platform} account: `reelsmith accounts add {platform}` adds one"
        )),
        1 => Ok(all.remove(0)),
        _ => Err(format!(
            "{} {platform} accounts ({}): say which with --account NAME (or `account:` in the \
             script's publish: block)",
            all.len(),
            all.iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Removes an account's file; false when there was none.
pub fn remove(data: &Path, platform: Platform, name: &str) -> Result<bool, String> {
    let path = path_of(data, platform, name)?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The account's access token, refreshed (and saved) when it expires within five minutes.
pub fn fresh_token(
    data: &Path,
    client: &Client,
    endpoints: &Endpoints,
    account: &mut Account,
) -> Result<String, OAuthError> {
    if account
        .token
        .expired(oauth::now_ms(), Duration::from_secs(300))
    {
        refresh(data, client, endpoints, account)?;
    }
    Ok(account.token.access_token.clone())
}

/// Refreshes the account's tokens now and saves them.
pub fn refresh(
    data: &Path,
    client: &Client,
    endpoints: &Endpoints,
    account: &mut Account,
) -> Result<(), OAuthError> {
    let t = oauth::refresh(
        client,
        endpoints,
        account.platform,
        &account.secrets,
        &account.token,
    )?;
    account.token = t;
    let platform = account.platform;
    save(data, account).map_err(|message| OAuthError::Failed { platform, message })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str) -> Account {
        Account {
            platform: Platform::YouTube,
            name: name.into(),
            secrets: ClientSecrets {
                client_id: "id".into(),
                client_secret: "very-secret".into(),
                kind: oauth::SecretsKind::Google,
            },
            token: Token {
                access_token: "ya29.secret-access".into(),
                refresh_token: Some("1//secret-refresh".into()),
                expires_at_ms: 0,
                scopes: vec![],
                extra: serde_json::Value::Null,
            },
            flow: "device".into(),
            created_ms: 0,
            display: None,
            user_id: None,
        }
    }

    #[test]
    fn accounts_are_owner_only_files_that_list_and_go() {
        let t = tempfile::tempdir().unwrap();
        let p = save(t.path(), &account("main")).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(p.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        assert_eq!(list(t.path(), None).len(), 1);
        assert_eq!(
            pick(t.path(), Platform::YouTube, None).unwrap().name,
            "main"
        );
        let e = load(t.path(), Platform::YouTube, "other").unwrap_err();
        assert!(
            e.contains("unknown youtube account") && e.contains("known: main"),
            "{e}"
        );
        assert!(pick(t.path(), Platform::TikTok, None).is_err());
        // Debug shows no secret.
        let dbg = format!("{:?}", load(t.path(), Platform::YouTube, "main").unwrap());
        assert!(
            !dbg.contains("secret-access") && !dbg.contains("very-secret"),
            "{dbg}"
        );
        assert!(save(t.path(), &account("../x")).is_err());
        // Names are checked on every path: no reading or removing outside the folder.
        assert!(load(t.path(), Platform::YouTube, "../../etc/passwd")
            .unwrap_err()
            .contains("account name"));
        assert!(remove(t.path(), Platform::YouTube, "../main").is_err());
        save(t.path(), &account("second")).unwrap();
        let e = pick(t.path(), Platform::YouTube, None).unwrap_err();
        assert!(e.contains("main, second") && e.contains("--account"), "{e}");
        assert!(remove(t.path(), Platform::YouTube, "main").unwrap());
        assert!(!remove(t.path(), Platform::YouTube, "main").unwrap());
    }
}
