//! `reelsmith accounts add|list|rm`: the platform accounts publishing uses.
//!
//! Adding an account on a headless server: YouTube without captions uses Google's device flow
//! (open a URL on any device, type a code); YouTube with `--captions` (the `youtube.force-ssl`
//! scope, which the device flow does not allow), TikTok and Instagram use the loopback
//! redirect flow: reelsmith listens on 127.0.0.1:PORT of the server and prints the `ssh -L`
//! line that makes the laptop's browser reach it, or takes the redirected URL pasted back
//! (`--paste`). Tokens go into owner-only files and are never printed.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use reelsmith_publish::oauth::{self, ClientSecrets, GoogleFlow};
use reelsmith_publish::{Client, Endpoints, Platform};

use super::Fail;
use crate::config::Dirs;
use crate::publish::accounts::{self, Account};

#[derive(Args, Debug)]
pub struct AccountsArgs {
    #[command(subcommand)]
    pub cmd: AccountsCmd,
}

#[derive(Subcommand, Debug)]
pub enum AccountsCmd {
    /// Authorise an account: youtube, tiktok or instagram.
    Add {
        platform: String,
        /// Its name here (default: the platform's name, e.g. `youtube`).
        #[arg(long)]
        name: Option<String>,
        /// The OAuth client: Google's client_secret_*.json, TikTok's {"client_key",
        /// "client_secret"}, Facebook's {"app_id", "app_secret"} (default:
        /// <config>/client_secrets/<platform>.json).
        #[arg(long)]
        client_secrets: Option<PathBuf>,
        /// YouTube: also upload captions (needs the loopback flow and a Desktop client).
        #[arg(long)]
        captions: bool,
        /// Loopback flow: the port to listen on (the redirect URI's; default a free one).
        #[arg(long)]
        port: Option<u16>,
        /// Loopback flow: paste the redirected URL (or its code) instead of waiting for it.
        #[arg(long)]
        paste: bool,
        /// Where the printed `ssh -L` line connects to (default: user@this-host).
        #[arg(long)]
        ssh_host: Option<String>,
        /// Instagram: the professional account's Instagram user id (default: the one linked to
        /// the Facebook Pages the login manages, found through `me/accounts`).
        #[arg(long)]
        ig_user_id: Option<String>,
    },
    /// List the accounts (never their tokens).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an account.
    Rm { platform: String, name: String },
}

pub fn run(args: AccountsArgs, dirs: &Dirs) -> i32 {
    Fail::exit_code(run_cmd(args, dirs))
}

fn platform_of(s: &str) -> Result<Platform, Fail> {
    Platform::parse(s).ok_or_else(|| {
        Fail::Input(format!(
            "unknown platform {s:?}; use youtube, tiktok or instagram"
        ))
    })
}

fn host() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "you".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this-server".into());
    format!("{user}@{host}")
}

/// The Instagram account a Facebook Login token posts as: the one professional account linked
/// to the Pages it manages (several: the user picks with --ig-user-id; none: how to link one).
fn instagram_user(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
) -> Result<(String, Option<String>), Fail> {
    let linked = reelsmith_publish::instagram::linked_accounts(client, endpoints, token)
        .map_err(|e| Fail::Failed(format!("instagram: finding the linked account: {e}")))?;
    match linked.as_slice() {
        [] => Err(Fail::Input(
            "instagram: no Instagram professional account is linked to the Facebook Pages this \
             login manages; link one (Meta Business Suite › Settings › Instagram account) or \
             give --ig-user-id ID"
                .into(),
        )),
        [one] => Ok((one.ig_user_id.clone(), one.username.clone())),
        many => Err(Fail::Input(format!(
            "instagram: several Instagram accounts are linked ({}); pick one with --ig-user-id ID",
            many.iter()
                .map(|a| format!(
                    "{} = @{} on {}",
                    a.ig_user_id,
                    a.username.as_deref().unwrap_or("?"),
                    a.page
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn run_cmd(args: AccountsArgs, dirs: &Dirs) -> Result<(), Fail> {
    let data = dirs.data.clone();
    match args.cmd {
        AccountsCmd::Add {
            platform,
            name,
            client_secrets,
            captions,
            port,
            paste,
            ssh_host,
            ig_user_id,
        } => {
            let platform = platform_of(&platform)?;
            if platform == Platform::Instagram
                && ig_user_id
                    .as_deref()
                    .is_some_and(|u| u.is_empty() || !u.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(Fail::Input(
                    "instagram: --ig-user-id ID takes the digits of the professional account's \
                     Instagram user id (leave it out to find it through the linked Page)"
                        .into(),
                ));
            }
            let name = name.unwrap_or_else(|| platform.as_str().to_string());
            if !accounts::valid_name(&name) {
                return Err(Fail::Input(format!(
                    "--name {name:?}: use letters, digits, -, _ and . (at most 64)"
                )));
            }
            let secrets_path = client_secrets.unwrap_or_else(|| {
                dirs.config
                    .join("client_secrets")
                    .join(format!("{platform}.json"))
            });
            if !secrets_path.is_file() {
                return Err(Fail::Input(format!(
                    "missing client secrets: {} does not exist; give the OAuth client's file \
                     with --client-secrets FILE ({})",
                    secrets_path.display(),
                    match platform {
                        Platform::YouTube =>
                            "Google Cloud console › APIs & Services › Credentials › \
                             OAuth client: \"TVs and Limited Input devices\" for the device flow, \
                             \"Desktop app\" for --captions; download its JSON",
                        Platform::TikTok =>
                            "{\"client_key\": …, \"client_secret\": …} of your \
                             TikTok app with the Content Posting API",
                        Platform::Instagram =>
                            "{\"app_id\": …, \"app_secret\": …} of your Meta \
                             app with Facebook Login for Business",
                    }
                )));
            }
            let secrets = ClientSecrets::from_file(&secrets_path, platform)
                .map_err(|e| Fail::Input(e.to_string()))?;
            let client = Client::from_env();
            let endpoints = Endpoints::from_env();
            let scopes = oauth::default_scopes(platform, captions);
            let device =
                platform == Platform::YouTube && oauth::google_flow(&scopes) == GoogleFlow::Device;
            let fail = |e: oauth::OAuthError| Fail::Failed(e.to_string());
            let (token, flow) = if device {
                let code =
                    oauth::device_start(&client, &endpoints, &secrets, &scopes).map_err(fail)?;
                eprintln!(
                    "On any device, open {} and enter the code {} (valid {} min).",
                    code.verification_url,
                    code.user_code,
                    code.expires_in / 60
                );
                (
                    oauth::device_wait(&client, &endpoints, &secrets, &code).map_err(fail)?,
                    "device",
                )
            } else {
                let port = port.or(oauth::needs_fixed_port(platform).then_some(8765));
                let flow =
                    oauth::LoopbackFlow::start(platform, &endpoints, &secrets, &scopes, port)
                        .map_err(fail)?;
                eprintln!("1. On your laptop, open a tunnel to this server:");
                eprintln!(
                    "     {}",
                    flow.ssh_command(ssh_host.as_deref().unwrap_or(&host()))
                );
                eprintln!("2. Open this address in the laptop's browser and allow access:");
                eprintln!("     {}", flow.auth_url());
                let code = if paste {
                    eprintln!(
                        "3. Paste the address the browser ends on (it starts with {}):",
                        flow.redirect_uri()
                    );
                    let mut line = String::new();
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .map_err(|e| Fail::Failed(e.to_string()))?;
                    flow.code_from_pasted(&line)
                        .map_err(|e| Fail::Input(e.to_string()))?
                } else {
                    eprintln!(
                        "   (waiting up to 10 minutes; --paste to paste the address instead)"
                    );
                    flow.wait(Duration::from_secs(600)).map_err(fail)?
                };
                (
                    oauth::exchange_code(
                        &client,
                        &endpoints,
                        platform,
                        &secrets,
                        &code,
                        flow.redirect_uri(),
                        flow.verifier(),
                    )
                    .map_err(fail)?,
                    "loopback",
                )
            };
            let (user_id, display) = match (platform, ig_user_id) {
                (Platform::Instagram, None) => {
                    let (id, name) = instagram_user(&client, &endpoints, &token.access_token)?;
                    (Some(id), name)
                }
                (_, id) => (id, None),
            };
            let account = Account {
                platform,
                name: name.clone(),
                secrets,
                token,
                flow: flow.into(),
                created_ms: oauth::now_ms(),
                display,
                user_id,
            };
            let path = accounts::save(&data, &account).map_err(Fail::Failed)?;
            println!(
                "added {platform} account {name} ({} flow; scopes {}); stored in {} (mode 600)",
                flow,
                account.token.scopes.join(" "),
                path.display()
            );
            Ok(())
        }
        AccountsCmd::List { json } => {
            let all = accounts::list(&data, None);
            let rows: Vec<serde_json::Value> = all
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "platform": a.platform.as_str(),
                        "name": a.name,
                        "flow": a.flow,
                        "scopes": a.token.scopes,
                        "expires_at_ms": a.token.expires_at_ms,
                        "refreshable": a.token.refresh_token.is_some(),
                    })
                })
                .collect();
            if json {
                println!("{}", serde_json::Value::Array(rows));
                return Ok(());
            }
            for a in &all {
                println!(
                    "{:<10} {:<20} {:<9} {}",
                    a.platform.as_str(),
                    a.name,
                    a.flow,
                    a.token.scopes.join(" ")
                );
            }
            println!("{} account(s)", all.len());
            Ok(())
        }
        AccountsCmd::Rm { platform, name } => {
            let platform = platform_of(&platform)?;
            if accounts::remove(&data, platform, &name).map_err(Fail::Failed)? {
                println!("removed {platform} account {name}");
                Ok(())
            } else {
                Err(Fail::Input(format!(
                    "unknown {platform} account {name:?} (`reelsmith accounts list`)"
                )))
            }
        }
    }
}
