//! Publishing from the command line against loopback fakes of Google's OAuth server and the
//! YouTube Data API (reelsmith_publish::testing): an account added with the device flow keeps
//! its tokens in an owner-only file and never prints them; bad input is refused with exit 2
//! and nothing queued; a video showing a real person needs a consent record; and an upload
//! whose process is SIGKILLed again and again, through dropped connections and 5xx bursts,
//! ends on YouTube byte for byte, with its thumbnail, followed until processed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reelsmith::media::encode::{EncodeSettings, Mp4Writer};
use reelsmith::media::image::RgbImage;
use reelsmith_publish::testing::oauth::FakeOAuth;
use reelsmith_publish::testing::youtube::FakeYouTube;
use reelsmith_publish::testing::Server;
use reelsmith_publish::Platform;

struct Env {
    tmp: tempfile::TempDir,
    oauth: FakeOAuth,
    _oauth_server: Server,
    yt: Arc<FakeYouTube>,
    yt_server: Server,
    oauth_url: String,
}

impl Env {
    fn new() -> Env {
        let oauth = FakeOAuth::new();
        oauth.set_interval(1);
        let oauth_server = Server::start(oauth.clone());
        let yt = FakeYouTube::new(&[]);
        let yt_server = yt.serve();
        Env {
            tmp: tempfile::tempdir().unwrap(),
            oauth_url: oauth_server.url(),
            oauth,
            _oauth_server: oauth_server,
            yt,
            yt_server,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_reelsmith"));
        c.args(args)
            .env("REELSMITH_DATA_DIR", self.path("data"))
            .env("REELSMITH_CONFIG_DIR", self.path("cfg"))
            .env("REELSMITH_GOOGLE_OAUTH", &self.oauth_url)
            .env("REELSMITH_YOUTUBE_API", self.yt_server.url())
            .env("REELSMITH_PUBLISH_BACKOFF_MS", "5")
            .env("REELSMITH_PUBLISH_POLL_MS", "20")
            .env("REELSMITH_YOUTUBE_CHUNK_KIB", "256");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("reelsmith runs")
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("reelsmith starts")
    }

    /// `accounts add youtube` through the device flow; YouTube then accepts the tokens issued.
    fn add_account(&self) -> Output {
        let secrets = self.path("client_secret.json");
        std::fs::write(&secrets, FakeOAuth::client_secrets_json(Platform::YouTube)).unwrap();
        let o = self.run(&[
            "accounts",
            "add",
            "youtube",
            "--name",
            "main",
            "--client-secrets",
            secrets.to_str().unwrap(),
        ]);
        for t in self.oauth.issued_tokens() {
            self.yt.accept_token(&t);
        }
        o
    }

    fn publications(&self) -> Vec<serde_json::Value> {
        let o = self.run(&["publish", "--list", "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .unwrap()
            .as_array()
            .cloned()
            .unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A seeded byte pattern (what is uploaded must come back byte for byte).
fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn mp4(path: &Path, w: u32, h: u32, frames: u32) {
    let s = EncodeSettings {
        width: w,
        height: h,
        fps: 10,
        crf: 30,
        preset: "ultrafast".into(),
        audio_rate: 48_000,
        audio_bitrate: 64_000,
        aac_coder: "fast".into(),
    };
    let mut m = Mp4Writer::create(path, &s, None).unwrap();
    for i in 0..frames {
        m.push_rgb(&RgbImage::filled(w, h, [(i * 20) as u8, 80, 160]))
            .unwrap();
    }
    m.finish().unwrap();
}

/// A finished render's folder as `render` exports it: report.json and, per language,
/// final.mp4 (here a seeded 3 MB file), short.mp4, metadata.json, thumbnail.png, captions.
fn render_dir(e: &Env, name: &str, real_people: &[&str], short: (u32, u32)) -> PathBuf {
    let dir = e.path(&format!("out/{name}"));
    for (i, lang) in ["en", "de"].iter().enumerate() {
        let d = dir.join(lang);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("final.mp4"), pattern(3 << 20, i as u64 + 1)).unwrap();
        mp4(&d.join("short.mp4"), short.0, short.1, 10);
        std::fs::write(
            d.join("metadata.json"),
            serde_json::json!({
                "lang": lang,
                "title": format!("Tide pools {lang} {}", "🌊".repeat(60)),
                "description": "Where the sea goes.",
                "tags": ["tide", "sea life", "ocean"],
                "category": "Education",
            })
            .to_string(),
        )
        .unwrap();
        reelsmith::media::stills::write_png(
            &RgbImage::filled(64, 36, [10, 120, 200]),
            &d.join("thumbnail.png"),
        )
        .unwrap();
        std::fs::write(
            d.join("captions.srt"),
            "1\n00:00:00,000 --> 00:00:01,000\nHi.\n\n",
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("report.json"),
        serde_json::json!({"languages": ["en", "de"], "real_people": real_people}).to_string(),
    )
    .unwrap();
    dir
}

#[test]
fn accounts_keep_tokens_private_and_bad_input_queues_nothing() {
    let e = Env::new();
    // Missing client secrets: exit 2.
    let o = e.run(&[
        "accounts",
        "add",
        "youtube",
        "--client-secrets",
        "/nope.json",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("missing client secrets"), "{}", text(&o));

    let o = e.add_account();
    assert!(o.status.success(), "{}", text(&o));
    let tokens = e.oauth.issued_tokens();
    assert!(!tokens.is_empty());
    let file = e.path("data/accounts/youtube/main.json");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file is {mode:o}");
    let list = e.run(&["accounts", "list"]);
    assert!(text(&list).contains("main"), "{}", text(&list));
    for t in &tokens {
        assert!(!text(&o).contains(t.as_str()) && !text(&list).contains(t.as_str()));
    }

    let dir = render_dir(&e, "wide", &[], (64, 36));
    let d = dir.to_str().unwrap();
    let past = "2020-01-01T00:00:00Z";
    let missing = e.path("out/empty");
    std::fs::create_dir_all(missing.join("en")).unwrap();
    std::fs::write(
        missing.join("report.json"),
        r#"{"languages": ["en"], "real_people": []}"#,
    )
    .unwrap();
    for (args, says) in [
        (
            vec!["publish", d, "--to", "youtube", "--account", "nope"],
            "unknown youtube account",
        ),
        (
            vec!["publish", missing.to_str().unwrap(), "--to", "youtube"],
            "final.mp4",
        ),
        (
            vec!["publish", d, "--to", "youtube", "--at", past],
            "in the past",
        ),
        (
            vec!["publish", d, "--to", "youtube", "--short"],
            "not a Short",
        ),
        (vec!["publish", d, "--to", "vimeo"], "unknown platform"),
        (
            vec!["publish", "/no/such/dir", "--to", "youtube"],
            "no such folder or job",
        ),
    ] {
        let o = e.run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(says), "{args:?}: {}", text(&o));
    }
    assert!(e.publications().is_empty(), "bad input queued something");

    // A real person without consent is refused, naming them; with a record it is queued.
    let ada = render_dir(&e, "ada", &["Ada Lovelace"], (36, 64));
    let o = e.run(&[
        "publish",
        ada.to_str().unwrap(),
        "--to",
        "youtube",
        "--queue",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("Ada Lovelace"), "{}", text(&o));
    let evidence = e.path("release.pdf");
    std::fs::write(&evidence, b"signed").unwrap();
    let o = e.run(&[
        "consent",
        "add",
        "Ada Lovelace",
        "--scope",
        "youtube: likeness",
        "--date",
        "2026-01-02",
        "--evidence",
        evidence.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = e.run(&[
        "publish",
        ada.to_str().unwrap(),
        "--to",
        "youtube",
        "--short",
        "--queue",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // Two languages, a video and a short each.
    assert_eq!(e.publications().len(), 4);
}

#[test]
fn an_upload_killed_again_and_again_ends_on_youtube_byte_for_byte() {
    let e = Env::new();
    assert!(e.add_account().status.success());
    let dir = render_dir(&e, "tides", &[], (36, 64));
    let want = std::fs::read(dir.join("en/final.mp4")).unwrap();
    // Slow chunks so the process can be killed mid-upload.
    e.yt.set_put_delay(Duration::from_millis(40));
    let args = [
        "publish",
        dir.to_str().unwrap(),
        "--to",
        "youtube",
        "--lang",
        "en",
        "--privacy",
        "unlisted",
    ];
    let mut child = e.spawn(&args);
    let mut kills = 0;
    let mut seen = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    // Kill it each time YouTube has received more, at three different points.
    while kills < 3 && Instant::now() < deadline {
        let got = e.yt.bytes_received();
        if got > seen + (500 << 10) {
            seen = got;
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
            // The next attempt also meets a dropped connection and a burst of 503s.
            if kills == 1 {
                e.yt.cut_next_put(100_000);
            } else if kills == 2 {
                e.yt.fail_next(503, 3);
            }
            // Between runs the listing shows progress but never the session URI.
            let o = e.run(&["publish", "--list", "--json"]);
            let listing = String::from_utf8_lossy(&o.stdout).into_owned();
            assert!(
                !listing.contains("upload_state") && !listing.contains("upload_id"),
                "{listing}"
            );
            child = e.spawn(&["publish", "--run"]);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        kills, 3,
        "the upload ended before it could be killed three times"
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "the last run failed: {status}");
    let videos = e.yt.videos();
    assert_eq!(videos.len(), 1, "one video, not one per attempt");
    assert!(
        videos[0].bytes == want,
        "the uploaded bytes differ from the file"
    );
    // Fields within YouTube's limits (the 100-character title cut on a grapheme boundary),
    // privacy as asked, the synthetic-media disclosure on by default, the other language as
    // a localization.
    let r = &videos[0].resource;
    let title = r["snippet"]["title"].as_str().unwrap();
    assert!(
        title.chars().count() <= 100 && title.ends_with('🌊'),
        "{title}"
    );
    assert_eq!(r["status"]["privacyStatus"], "unlisted");
    assert_eq!(r["status"]["containsSyntheticMedia"], true);
    assert_eq!(r["snippet"]["defaultLanguage"], "en");
    assert!(r["localizations"]["de"]["title"].is_string(), "{r}");
    assert_eq!(e.yt.thumbnails().len(), 1);
    let rows = e.publications();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], "live", "{}", rows[0]);
    assert_eq!(rows[0]["remote_id"], videos[0].id.as_str());
    // One upload in today's ledger, however many attempts it took.
    let store = reelsmith::store::Store::open(&e.path("data/reelsmith.db")).unwrap();
    let day = reelsmith::publish::runner::quota_day(reelsmith_publish::oauth::now_ms());
    assert_eq!(
        store.quota_used("youtube", "main", &day, "insert").unwrap(),
        1
    );
    // No token in the log or the account listing.
    let log = std::fs::read_to_string(e.path("data/logs/reelsmith.log")).unwrap_or_default();
    for t in e.oauth.issued_tokens() {
        assert!(!log.contains(&t), "a token is in the log");
    }
}

/// An account written as `accounts add` would, for a platform whose fake accepts `token`.
fn write_account(e: &Env, platform: Platform, token: &str, user_id: Option<&str>) {
    use reelsmith_publish::oauth::{ClientSecrets, SecretsKind, Token};
    let a = reelsmith::publish::accounts::Account {
        platform,
        name: "main".into(),
        secrets: ClientSecrets {
            client_id: "id".into(),
            client_secret: "secret".into(),
            kind: SecretsKind::for_platform(platform),
        },
        token: Token {
            access_token: token.into(),
            refresh_token: None,
            expires_at_ms: 0,
            scopes: vec![],
            extra: serde_json::Value::Null,
        },
        flow: "loopback".into(),
        created_ms: 0,
        display: None,
        user_id: user_id.map(str::to_string),
    };
    reelsmith::publish::accounts::save(&e.path("data"), &a).unwrap();
}

#[test]
fn the_short_goes_to_tiktok_and_instagram_reels_with_their_disclosures() {
    use reelsmith_publish::testing::instagram::FakeInstagram;
    use reelsmith_publish::testing::tiktok::FakeTikTok;
    let e = Env::new();
    let tt = FakeTikTok::start();
    let ig = FakeInstagram::start();
    write_account(&e, Platform::TikTok, FakeTikTok::TOKEN, None);
    let dir = render_dir(&e, "tides", &[], (36, 64));
    let short = std::fs::read(dir.join("en/short.mp4")).unwrap();
    let run = |args: &[&str]| social(&e, &tt, &ig, args).output().unwrap();
    // An Instagram account without its user id is refused before anything is queued.
    write_account(&e, Platform::Instagram, FakeInstagram::TOKEN, None);
    let d = dir.to_str().unwrap();
    let o = run(&[
        "publish",
        d,
        "--to",
        "instagram",
        "--lang",
        "en",
        "--privacy",
        "public",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--ig-user-id"), "{}", text(&o));
    assert!(e.publications().is_empty());
    write_account(
        &e,
        Platform::Instagram,
        FakeInstagram::TOKEN,
        Some(FakeInstagram::USER_ID),
    );

    // What a platform cannot do is refused, not done otherwise: Instagram has no private
    // Reels, and neither TikTok nor Instagram schedules through its API.
    let o = run(&["publish", d, "--to", "tiktok,instagram", "--lang", "en"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("Instagram Reels"), "{}", text(&o));
    let o = run(&[
        "publish",
        d,
        "--to",
        "tiktok",
        "--at",
        "2099-01-01T00:00:00Z",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cannot schedule"), "{}", text(&o));
    assert!(e.publications().is_empty());

    let o = run(&["publish", d, "--to", "tiktok", "--lang", "en"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&[
        "publish",
        d,
        "--to",
        "instagram",
        "--lang",
        "en",
        "--privacy",
        "public",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let rows = e.publications();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        assert_eq!(r["status"], "live", "{r}");
        assert_eq!(r["kind"], "short", "{r}");
    }
    // Byte for byte on both, posted privately on TikTok with the AI-generated label.
    assert_eq!(tt.videos(), vec![short.clone()]);
    let init = &tt.uploads()[0].init;
    assert_eq!(init["post_info"]["privacy_level"], "SELF_ONLY", "{init}");
    assert_eq!(init["post_info"]["is_aigc"], true, "{init}");
    let (media, _) = ig.published()[0].clone();
    assert_eq!(ig.published_video(&media).unwrap(), short);

    // To the creator's TikTok inbox instead: no creator_info, no post settings.
    let queries = tt.creator_queries();
    let o = run(&[
        "publish",
        d,
        "--to",
        "tiktok",
        "--lang",
        "de",
        "--tiktok-mode",
        "inbox",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let uploads = tt.uploads();
    assert_eq!(uploads.len(), 2);
    assert_eq!(uploads[1].mode, "inbox");
    assert_eq!(tt.creator_queries(), queries);
    assert_eq!(
        tt.video(&uploads[1].publish_id).unwrap(),
        std::fs::read(dir.join("de/short.mp4")).unwrap()
    );
    let o = run(&["publish", d, "--to", "tiktok", "--tiktok-mode", "drafts"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn a_script_with_a_publish_block_queues_its_publications_when_the_render_is_done() {
    let e = Env::new();
    // Without an account the render is done but its publishing is not: said, and exit 1.
    let dunes = e.path("dunes.yaml");
    std::fs::write(
        &dunes,
        "title: Dunes\nchannel: explainer\nlanguage: en\nscenes:\n  - prompt: sand\n    lines:\n      \
         - text: The wind moves them.\npublish:\n  to: [youtube]\n",
    )
    .unwrap();
    let o = e.run(&[
        "render",
        dunes.to_str().unwrap(),
        "--out",
        e.path("out").to_str().unwrap(),
        "--quality",
        "draft",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("publishing not queued") && text(&o).contains("no youtube account"),
        "{}",
        text(&o)
    );
    assert!(e.path("out/dunes/en/final.mp4").is_file());
    assert!(e.publications().is_empty());

    assert!(e.add_account().status.success());
    let script = e.path("tides.yaml");
    std::fs::write(
        &script,
        "title: Tides\nchannel: explainer\nlanguage: en\nscenes:\n  - prompt: waves\n    lines:\n      \
         - text: The sea comes in.\npublish:\n  to: [youtube]\n",
    )
    .unwrap();
    // The privacy comes from the channel's [publish] defaults (the user's overlay).
    std::fs::create_dir_all(e.path("cfg/channels")).unwrap();
    std::fs::write(
        e.path("cfg/channels/explainer.toml"),
        "[publish]\nto = [\"tiktok\"]\nprivacy = \"unlisted\"\n",
    )
    .unwrap();
    let out = e.path("out");
    let o = e.run(&[
        "render",
        script.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quality",
        "draft",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // Queued by the finished job and uploaded by the foreground render before it returns.
    assert!(text(&o).contains("publishing 1 upload"), "{}", text(&o));
    let rows = e.publications();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["platform"], "youtube");
    assert_eq!(rows[0]["kind"], "video");
    assert_eq!(rows[0]["status"], "live", "{}", rows[0]);
    // Nothing is left for a later run.
    let o = e.run(&["publish", "--run"]);
    assert!(o.status.success(), "{}", text(&o));
    let videos = e.yt.videos();
    assert_eq!(videos.len(), 1);
    assert_eq!(
        videos[0].bytes,
        std::fs::read(out.join("tides/en/final.mp4")).unwrap()
    );
    assert_eq!(videos[0].resource["status"]["privacyStatus"], "unlisted");
}

/// `reelsmith ARGS` with TikTok's and Instagram's endpoints pointed at the fakes.
fn social(
    e: &Env,
    tt: &reelsmith_publish::testing::tiktok::FakeTikTok,
    ig: &reelsmith_publish::testing::instagram::FakeInstagram,
    args: &[&str],
) -> Command {
    let mut c = e.command(args);
    c.env("REELSMITH_TIKTOK_API", tt.url())
        .env("REELSMITH_INSTAGRAM_API", ig.graph_url())
        .env("REELSMITH_INSTAGRAM_UPLOAD", ig.upload_url());
    c
}

/// Waits until publication rows satisfy `ok` (the listing is read through the CLI).
fn wait_rows(e: &Env, what: &str, ok: impl Fn(&[serde_json::Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = e.publications();
        if ok(&rows) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {rows:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tiktok_and_instagram_killed_while_processing_resume_without_uploading_again() {
    use reelsmith_publish::testing::instagram::FakeInstagram;
    use reelsmith_publish::testing::tiktok::FakeTikTok;
    let e = Env::new();
    let tt = FakeTikTok::start();
    let ig = FakeInstagram::start();
    write_account(&e, Platform::TikTok, FakeTikTok::TOKEN, None);
    write_account(
        &e,
        Platform::Instagram,
        FakeInstagram::TOKEN,
        Some(FakeInstagram::USER_ID),
    );
    // Long processing on both, so the runner is killed while it follows it.
    tt.set_polls_to_complete(100_000);
    ig.set_polls_to_finish(100_000);
    let dir = render_dir(&e, "tides", &[], (36, 64));
    let short = std::fs::read(dir.join("en/short.mp4")).unwrap();
    let spawn = |args: &[&str]| {
        social(&e, &tt, &ig, args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let d = dir.to_str().unwrap();
    let o = e
        .command(&["publish", d, "--to", "tiktok", "--lang", "en", "--queue"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = e
        .command(&[
            "publish",
            d,
            "--to",
            "instagram",
            "--lang",
            "en",
            "--privacy",
            "public",
            "--queue",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // A runner is started and SIGKILLed once `platform`'s publication is processing.
    let kill_while_processing = |platform: &str| {
        let mut child = spawn(&["publish", "--run"]);
        wait_rows(&e, &format!("processing on {platform}"), |rows| {
            rows.iter()
                .any(|r| r["platform"] == platform && r["status"] == "processing")
        });
        child.kill().unwrap();
        child.wait().unwrap();
    };
    // One runner takes TikTok first: killed while TikTok processes.
    kill_while_processing("tiktok");
    // The next one resumes TikTok (no new upload) and, TikTok done, gets Instagram's
    // container to processing: killed there too.
    tt.set_polls_to_complete(3);
    kill_while_processing("instagram");
    ig.set_polls_to_finish(3);
    let o = social(&e, &tt, &ig, &["publish", "--run"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let rows = e.publications();
    assert!(rows.iter().all(|r| r["status"] == "live"), "{rows:?}");
    // One upload each, byte for byte.
    assert_eq!(tt.inits(), 1, "TikTok got a second upload");
    assert_eq!(tt.videos(), vec![short.clone()]);
    assert_eq!(ig.containers_made(), 1, "Instagram got a second container");
    let (media, _) = ig.published()[0].clone();
    assert_eq!(ig.published_video(&media).unwrap(), short);
    assert_eq!(ig.published().len(), 1);
}
