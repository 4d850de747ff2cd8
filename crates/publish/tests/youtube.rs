//! YouTube uploads against the loopback fake: every fault the protocol documents (dropped
//! connections mid-chunk, 5xx bursts, expired sessions, refused tokens, quotas), resumption
//! from a persisted state in a new call and in a new process killed with SIGKILL at random
//! points, and the limits applied before anything is sent. Every finished upload is compared
//! byte for byte with its file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reelsmith_publish::http::{Body, Client};
use reelsmith_publish::limits;
use reelsmith_publish::testing::youtube::{FakeYouTube, Logged, UNIT};
use reelsmith_publish::testing::Server;
use reelsmith_publish::youtube::{
    self, add_to_playlist, insert_caption, processing, set_thumbnail, upload_video_with, Privacy,
    ProcessingStatus, UploadOptions, UploadState, VideoMeta, YouTubeError,
};
use reelsmith_publish::Endpoints;

const TOKEN: &str = "ya29.test-token";

/// A deterministic byte pattern (xorshift64*), so a misplaced chunk can't look right.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn video_file(dir: &Path, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
    let data = pattern(len, seed);
    let p = dir.join(name);
    std::fs::write(&p, &data).unwrap();
    (p, data)
}

fn client() -> Client {
    Client::new(Duration::from_secs(10), Duration::from_millis(2))
}

fn endpoints(server: &Server) -> Endpoints {
    Endpoints {
        youtube_api: server.url(),
        ..Endpoints::default()
    }
}

fn opts(chunk: u64) -> UploadOptions {
    UploadOptions {
        chunk,
        ..UploadOptions::default()
    }
}

fn meta() -> VideoMeta {
    VideoMeta {
        title: "Episode 1: the <first> one".into(),
        description: "A video made by reelsmith.\nSecond line.".into(),
        tags: vec!["anime".into(), "shorts".into(), "Anime".into()],
        default_language: "en".into(),
        privacy: Privacy::Unlisted,
        synthetic: true,
        ..VideoMeta::default()
    }
}

/// One `upload_video_with` call; the states it persisted are pushed to `saved`, and `on_progress`
/// sees each acknowledged offset (returning false cancels).
#[allow(clippy::too_many_arguments)]
fn upload(
    server: &Server,
    token: &str,
    meta: &VideoMeta,
    file: &Path,
    state: &mut UploadState,
    saved: &mut Vec<UploadState>,
    on_progress: &mut dyn FnMut(u64, u64) -> bool,
    options: &UploadOptions,
) -> Result<String, YouTubeError> {
    upload_video_with(
        &client(),
        &endpoints(server),
        token,
        meta,
        file,
        state,
        &mut |s: &UploadState| {
            saved.push(s.clone());
            Ok(())
        },
        on_progress,
        options,
    )
}

fn simple(
    server: &Server,
    file: &Path,
    state: &mut UploadState,
    chunk: u64,
) -> Result<String, YouTubeError> {
    let mut saved = Vec::new();
    upload(
        server,
        TOKEN,
        &meta(),
        file,
        state,
        &mut saved,
        &mut |_, _| true,
        &opts(chunk),
    )
}

/// The `Content-Range` first byte of each chunk PUT, in order.
fn chunk_starts(log: &[Logged]) -> Vec<u64> {
    log.iter()
        .filter(|l| l.method == "PUT" && l.body_len > 0)
        .filter_map(|l| l.content_range.as_deref())
        .filter_map(|r| r.strip_prefix("bytes ")?.split('-').next()?.parse().ok())
        .collect()
}

fn queries(log: &[Logged]) -> usize {
    log.iter()
        .filter(|l| {
            l.content_range
                .as_deref()
                .is_some_and(|r| r.starts_with("bytes */"))
        })
        .count()
}

#[test]
fn a_plain_upload_sends_the_metadata_and_the_exact_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video_file(dir.path(), "v.mp4", 3 * 1024 * 1024 + 777, 1);
    let yt = FakeYouTube::new(&[TOKEN]);
    let server = yt.serve();
    let mut state = UploadState::default();
    let mut saved = Vec::new();
    let mut seen = Vec::new();
    let id = upload(
        &server,
        TOKEN,
        &meta(),
        &file,
        &mut state,
        &mut saved,
        &mut |a, b| {
            seen.push((a, b));
            true
        },
        &opts(1024 * 1024),
    )
    .unwrap();
    let v = yt.video(&id).unwrap();
    assert!(v.bytes == data, "the uploaded bytes differ from the file");
    assert_eq!(v.content_type, "video/mp4");
    assert_eq!(v.parts, "snippet,status");
    assert_eq!(
        v.resource["snippet"]["title"],
        "Episode 1: the \u{2039}first\u{203A} one"
    );
    assert_eq!(
        v.resource["snippet"]["tags"],
        serde_json::json!(["anime", "shorts"])
    );
    assert_eq!(v.resource["snippet"]["defaultLanguage"], "en");
    assert_eq!(v.resource["status"]["privacyStatus"], "unlisted");
    assert_eq!(v.resource["status"]["containsSyntheticMedia"], true);
    assert_eq!(v.resource["status"]["selfDeclaredMadeForKids"], false);
    // The session is persisted before the first byte, then each acknowledged chunk.
    assert!(saved[0].session_uri.is_some() && saved[0].offset == 0);
    let offsets: Vec<u64> = saved.iter().map(|s| s.offset).collect();
    assert_eq!(offsets, [0, 1 << 20, 2 << 20, 3 << 20, data.len() as u64]);
    assert_eq!(state.video_id.as_deref(), Some(id.as_str()));
    assert_eq!(state.total, data.len() as u64);
    assert_eq!(seen.last(), Some(&(data.len() as u64, data.len() as u64)));
    // 4 chunks, no status query on a fresh session.
    let log = yt.requests();
    assert_eq!(chunk_starts(&log), [0, 1 << 20, 2 << 20, 3 << 20]);
    assert_eq!(queries(&log), 0);
    assert!(log.iter().all(|l| l.token.as_deref() == Some(TOKEN)));
    // Calling again with the finished state sends nothing.
    let n = yt.requests().len();
    assert_eq!(simple(&server, &file, &mut state, 1 << 20).unwrap(), id);
    assert_eq!(yt.requests().len(), n);
}

#[test]
fn dropped_connections_at_several_offsets_resume_where_youtube_says() {
    for granularity in [1, UNIT] {
        let dir = tempfile::tempdir().unwrap();
        let (file, data) = video_file(dir.path(), "v.webm", 3 * 1024 * 1024 + 12_345, 2);
        let yt = FakeYouTube::new(&[TOKEN]);
        yt.keep_partial_bytes(granularity);
        let server = yt.serve();
        // Cut the first chunk after 1 byte, and later chunks at unaligned and aligned points.
        for cut in [1, 100_000, 262_144, 300_001, 524_287, 5] {
            yt.cut_next_put(cut);
        }
        let mut state = UploadState::default();
        let id = simple(&server, &file, &mut state, 512 * 1024).unwrap();
        let v = yt.video(&id).unwrap();
        assert!(v.bytes == data, "granularity {granularity}: bytes differ");
        assert_eq!(v.content_type, "video/webm");
        let log = yt.requests();
        let cut = log.iter().filter(|l| !l.complete).count();
        assert_eq!(cut, 6, "granularity {granularity}");
        // Every drop is followed by a status query before the next chunk.
        assert!(queries(&log) >= 6);
        for (i, l) in log.iter().enumerate() {
            if !l.complete {
                let next = &log[i + 1];
                assert!(
                    next.content_range
                        .as_deref()
                        .unwrap()
                        .starts_with("bytes */"),
                    "{next:?}"
                );
                // The query is an empty PUT with Content-Length: 0.
                assert_eq!(next.content_length.as_deref(), Some("0"));
            }
        }
        // With every partial byte kept, some chunks resume at unaligned offsets.
        let unaligned = chunk_starts(&log).iter().any(|s| s % UNIT as u64 != 0);
        assert_eq!(unaligned, granularity == 1, "granularity {granularity}");
        assert_eq!(yt.sessions_started(), 1);
    }
}

#[test]
fn bursts_of_server_errors_are_waited_out() {
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video_file(dir.path(), "v.mp4", 2 * 1024 * 1024 + 1, 3);
    let yt = FakeYouTube::new(&[TOKEN]);
    let server = yt.serve();
    yt.fail_next(503, 3); // at the start: the session itself is retried
    let mut state = UploadState::default();
    let mut saved = Vec::new();
    let y = yt.clone();
    let mut bursts = vec![(500, 2), (502, 4), (504, 1)];
    let id = upload(
        &server,
        TOKEN,
        &meta(),
        &file,
        &mut state,
        &mut saved,
        &mut |sent, _| {
            if sent > 0 {
                if let Some((status, n)) = bursts.pop() {
                    y.fail_next(status, n);
                }
            }
            true
        },
        &opts(UNIT as u64 * 2),
    )
    .unwrap();
    assert!(yt.video(&id).unwrap().bytes == data);
    let log = yt.requests();
    let count = |s: u16| log.iter().filter(|l| l.status == Some(s)).count();
    assert_eq!(
        (count(503), count(500), count(502), count(504)),
        (3, 2, 4, 1)
    );
    assert_eq!(yt.sessions_started(), 1);
}

#[test]
fn endless_server_errors_give_up_and_the_saved_state_finishes_later() {
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video_file(dir.path(), "v.mp4", 1024 * 1024 + 99, 4);
    let yt = FakeYouTube::new(&[TOKEN]);
    let server = yt.serve();
    let mut state = UploadState::default();
    let mut saved = Vec::new();
    let y = yt.clone();
    let options = UploadOptions {
        chunk: UNIT as u64,
        max_attempts: 4,
        max_restarts: 3,
    };
    let e = upload(
        &server,
        TOKEN,
        &meta(),
        &file,
        &mut state,
        &mut saved,
        &mut |sent, _| {
            if sent == 2 * UNIT as u64 {
                y.fail_next(503, 1000);
            }
            true
        },
        &options,
    )
    .unwrap_err();
    assert!(
        matches!(e, YouTubeError::Unavailable { attempts: 4, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("HTTP 503"), "{e}");
    let last = saved.last().unwrap().clone();
    assert_eq!(last.offset, 2 * UNIT as u64);
    yt.fail_next(503, 0);
    let mut state = last;
    let id = simple(&server, &file, &mut state, UNIT as u64).unwrap();
    assert!(yt.video(&id).unwrap().bytes == data);
    assert_eq!(yt.sessions_started(), 1);
}

#[test]
fn an_expired_session_starts_over_from_byte_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video_file(dir.path(), "v.mp4", 2 * 1024 * 1024 + 5, 5);
    let yt = FakeYouTube::new(&[TOKEN]);
    let server = yt.serve();
    yt.expire_next_session_after(3);
    let mut state = UploadState::default();
    let mut saved = Vec::new();
    let id = upload(
        &server,
        TOKEN,
        &meta(),
        &file,
        &mut state,
        &mut saved,
        &mut |_, _| true,
        &opts(UNIT as u64),
    )
    .unwrap();
    assert!(yt.video(&id).unwrap().bytes == data);
    assert_eq!(yt.sessions_started(), 2);
    assert_eq!(
        yt.session_progress()[0],
        (3 * UNIT as u64, data.len() as u64)
    );
    // The expiry was persisted: no session, offset 0; then a new session.
    let first = saved[0].session_uri.clone();
    let i = saved.iter().position(|s| s.session_uri.is_none()).unwrap();
    assert_eq!(saved[i].offset, 0);
    assert!(saved[i + 1].session_uri.is_some() && saved[i + 1].session_uri != first);
    let log = yt.requests();
    let gone = log.iter().position(|l| l.status == Some(404)).unwrap();
    assert_eq!(
        log[gone].content_range.as_deref(),
        Some("bytes 786432-1048575/2097157")
    );
    assert_eq!(chunk_starts(&log[gone + 1..])[0], 0);

    // A persisted state whose session expired meanwhile (a process that came back late).
    let (file2, data2) = video_file(dir.path(), "w.mp4", 700_000, 6);
    let mut state = UploadState::default();
    let mut saved = Vec::new();
    let e = upload(
        &server,
        TOKEN,
        &meta(),
        &file2,
        &mut state,
        &mut saved,
        &mut |sent, _| sent < UNIT as u64,
        &opts(UNIT as u64),
    )
    .unwrap_err();
    assert_eq!(e, YouTubeError::Cancelled);
    yt.expire_all_sessions();
    let mut state: UploadState =
        serde_json::from_str(&serde_json::to_string(saved.last().unwrap()).unwrap()).unwrap();
    let id = simple(&server, &file2, &mut state, UNIT as u64).unwrap();
    assert!(yt.video(&id).unwrap().bytes == data2);
    assert_eq!(yt.sessions_started(), 4);
}

#[test]
fn a_refused_token_stops_and_the_same_state_finishes_with_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video_file(dir.path(), "v.mp4", 1024 * 1024 + 3, 7);
    let yt = FakeYouTube::new(&["old-token"]);
    let server = yt.serve();
    let mut state = UploadState::default();
    let mut saved = Vec::new();
    let y = yt.clone();
    let e = upload(
        &server,
        "old-token",
        &meta(),
        &file,
        &mut state,
        &mut saved,
        &mut |sent, _| {
            if sent >= UNIT as u64 {
                y.revoke_token("old-token"); // it expires mid-upload
            }
            true
        },
        &opts(UNIT as u64),
    )
    .unwrap_err();
    assert_eq!(e, YouTubeError::Unauthorized);
    assert!(e.to_string().contains("refresh"));
    assert_eq!(state.offset, UNIT as u64);
    assert!(state.session_uri.is_some());
    let before = yt.requests().len();

    // The caller refreshes the token and calls again with the same state.
    yt.accept_token("new-token");
    let mut saved = Vec::new();
    let id = upload(
        &server,
        "new-token",
        &meta(),
        &file,
        &mut state,
        &mut saved,
        &mut |_, _| true,
        &opts(UNIT as u64),
    )
    .unwrap();
    assert!(yt.video(&id).unwrap().bytes == data);
    assert_eq!(yt.sessions_started(), 1);
    let log = yt.requests();
    let resumed = &log[before..];
    assert!(resumed[0]
        .content_range
        .as_deref()
        .unwrap()
        .starts_with("bytes */"));
    assert!(resumed
        .iter()
        .all(|l| l.token.as_deref() == Some("new-token")));
    assert_eq!(chunk_starts(resumed)[0], UNIT as u64);
}

#[test]
fn a_new_call_takes_the_offset_from_youtubes_range_not_from_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video_file(dir.path(), "v.mp4", 2 * 1024 * 1024 + 17, 8);
    let yt = FakeYouTube::new(&[TOKEN]);
    let server = yt.serve();
    // The third chunk's connection drops after 100,000 bytes, and this "process" dies right
    // there (one attempt allowed): YouTube holds 2 units + 100,000 bytes, the state says 2 units.
    let mut state = UploadState::default();
    let mut saved = Vec::new();
    let y = yt.clone();
    let e = upload(
        &server,
        TOKEN,
        &meta(),
        &file,
        &mut state,
        &mut saved,
        &mut |sent, _| {
            if sent == 2 * UNIT as u64 {
                y.cut_next_put(100_000);
            }
            true
        },
        &UploadOptions {
            chunk: UNIT as u64,
            max_attempts: 1,
            max_restarts: 0,
        },
    )
    .unwrap_err();
    assert!(matches!(e, YouTubeError::Unavailable { .. }), "{e}");
    let on_disk = serde_json::to_string(saved.last().unwrap()).unwrap();
    assert_eq!(yt.session_progress()[0].0, 2 * UNIT as u64 + 100_000);

    // A new process reads the state; even a wrong offset in it does not matter.
    let mut state: UploadState = serde_json::from_str(&on_disk).unwrap();
    assert_eq!(state.offset, 2 * UNIT as u64);
    state.offset = 12_345;
    let before = yt.requests().len();
    let id = simple(&server, &file, &mut state, UNIT as u64).unwrap();
    assert!(yt.video(&id).unwrap().bytes == data);
    let log = yt.requests();
    assert!(log[before]
        .content_range
        .as_deref()
        .unwrap()
        .starts_with("bytes */"));
    assert_eq!(log[before].status, Some(308));
    assert_eq!(chunk_starts(&log[before..])[0], 2 * UNIT as u64 + 100_000);
    assert_eq!(yt.sessions_started(), 1);
}

#[test]
fn a_state_for_a_changed_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (file, mut data) = video_file(dir.path(), "v.mp4", 800_000, 9);
    let yt = FakeYouTube::new(&[TOKEN]);
    let server = yt.serve();
    let mut state = UploadState::default();
    let mut saved = Vec::new();
    let _ = upload(
        &server,
        TOKEN,
        &meta(),
        &file,
        &mut state,
        &mut saved,
        &mut |_, _| false,
        &opts(UNIT as u64),
    );
    assert!(!state.sha256.is_empty() && state.session_uri.is_some());
    data[500_000] ^= 1; // re-rendered: one bit differs
    std::fs::write(&file, &data).unwrap();
    let n = yt.requests().len();
    let e = simple(&server, &file, &mut state, UNIT as u64).unwrap_err();
    assert!(matches!(e, YouTubeError::FileChanged { .. }), "{e}");
    assert!(e.to_string().contains("changed"));
    assert_eq!(
        yt.requests().len(),
        n,
        "nothing may be sent for a changed file"
    );
}

#[test]
fn quota_and_other_refusals_carry_youtubes_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = video_file(dir.path(), "v.mp4", 1000, 10);
    let yt = FakeYouTube::new(&[TOKEN]);
    let server = yt.serve();
    yt.quota_exceeded();
    let mut state = UploadState::default();
    match simple(&server, &file, &mut state, UNIT as u64).unwrap_err() {
        YouTubeError::Quota { reason, message } => {
            assert_eq!(reason, "quotaExceeded");
            assert!(message.contains("exceeded your quota"));
        }
        e => panic!("{e:?}"),
    }
    assert!(state.session_uri.is_none());
    yt.fail_inserts(
        400,
        "uploadLimitExceeded",
        "The user has exceeded the number of videos they may upload.",
    );
    let e = simple(&server, &file, &mut state, UNIT as u64).unwrap_err();
    assert!(
        matches!(&e, YouTubeError::Quota { reason, .. } if reason == "uploadLimitExceeded"),
        "{e}"
    );
    yt.fail_inserts(403, "insufficientPermissions", "Insufficient Permission");
    match simple(&server, &file, &mut state, UNIT as u64).unwrap_err() {
        YouTubeError::Rejected {
            status,
            reason,
            message,
            hint,
        } => {
            assert_eq!(
                (status, reason.as_str(), message.as_str()),
                (403, "insufficientPermissions", "Insufficient Permission")
            );
            assert!(hint.contains("scopes"), "{hint}");
        }
        e => panic!("{e:?}"),
    }
    yt.clear_insert_failure();
    assert!(simple(&server, &file, &mut state, UNIT as u64).is_ok());
    assert_eq!(yt.sessions_started(), 1);
}

#[test]
fn fields_are_cut_to_the_limits_before_they_reach_youtube() {
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video_file(dir.path(), "v.mov", 300_000, 11);
    let yt = FakeYouTube::new(&[TOKEN]);
    let server = yt.serve();
    let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
    let m = VideoMeta {
        title: format!("{}{family} <and> more", "タイトル".repeat(24)),
        description: format!("{}<end>", "説明 🎬\n".repeat(1000)),
        tags: (0..200).map(|i| format!("tag number {i}")).collect(),
        default_language: "ja".into(),
        localizations: [
            ("en".to_string(), ("T".repeat(300), "D<>".repeat(3000))),
            ("fr".to_string(), ("Épisode".into(), String::new())),
        ]
        .into(),
        privacy: Privacy::Private,
        publish_at: Some("2030-06-01T18:00:00Z".into()),
        ..VideoMeta::default()
    };
    let mut state = UploadState::default();
    let mut saved = Vec::new();
    let id = upload(
        &server,
        TOKEN,
        &m,
        &file,
        &mut state,
        &mut saved,
        &mut |_, _| true,
        &opts(UNIT as u64),
    )
    .unwrap();
    let v = yt.video(&id).unwrap();
    assert!(v.bytes == data);
    assert_eq!(v.parts, "snippet,status,localizations");
    let s = &v.resource["snippet"];
    let title = s["title"].as_str().unwrap();
    assert_eq!(title, "タイトル".repeat(24)); // 96 units; the 8-unit family would make 104
    assert!(s["description"].as_str().unwrap().len() <= 5000);
    let tags: Vec<String> = serde_json::from_value(s["tags"].clone()).unwrap();
    assert!(limits::youtube_tags_len(&tags) <= 500 && tags.len() > 20);
    assert_eq!(tags[0], "tag number 0");
    assert_eq!(s["defaultLanguage"], "ja");
    assert_eq!(
        v.resource["localizations"]["en"]["title"]
            .as_str()
            .unwrap()
            .len(),
        100
    );
    assert_eq!(v.resource["status"]["publishAt"], "2030-06-01T18:00:00Z");
    assert_eq!(v.resource["status"]["privacyStatus"], "private");

    // What cannot be fixed is refused before anything is sent.
    let n = yt.requests().len();
    let scheduled_public = VideoMeta {
        privacy: Privacy::Public,
        ..m.clone()
    };
    let mut state = UploadState::default();
    let mut saved = Vec::new();
    let e = upload(
        &server,
        TOKEN,
        &scheduled_public,
        &file,
        &mut state,
        &mut saved,
        &mut |_, _| true,
        &opts(UNIT as u64),
    )
    .unwrap_err();
    assert!(matches!(e, YouTubeError::Invalid(_)), "{e}");
    let untitled = VideoMeta {
        title: "  ".into(),
        ..meta()
    };
    let e = upload(
        &server,
        TOKEN,
        &untitled,
        &file,
        &mut state,
        &mut saved,
        &mut |_, _| true,
        &opts(UNIT as u64),
    )
    .unwrap_err();
    assert!(matches!(e, YouTubeError::Invalid(_)), "{e}");
    assert_eq!(yt.requests().len(), n);
}

/// The fake refuses what YouTube refuses (so the tests above could fail).
#[test]
fn the_fake_checks_what_it_is_sent() {
    let yt = FakeYouTube::new(&[TOKEN]);
    let server = yt.serve();
    let c = client();
    let start = |body: serde_json::Value, token: &str, parts: &str| {
        c.send(
            "POST",
            &format!(
                "{}/upload/youtube/v3/videos?uploadType=resumable&part={parts}",
                server.url()
            ),
            &[
                ("Authorization", &format!("Bearer {token}")),
                ("X-Upload-Content-Length", "600000"),
                ("X-Upload-Content-Type", "video/mp4"),
            ],
            Body::Json(body),
        )
        .unwrap()
    };
    let good = || {
        serde_json::json!({"snippet": {"title": "t", "description": "", "categoryId": "22"},
            "status": {"privacyStatus": "private"}})
    };
    let reason = |r: &reelsmith_publish::http::Response| {
        r.json()["error"]["errors"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(start(good(), "wrong", "snippet,status").status, 401);
    let mut b = good();
    b["snippet"]["title"] = "😀".repeat(51).into(); // 102 UTF-16 units
    assert_eq!(reason(&start(b, TOKEN, "snippet,status")), "invalidTitle");
    let mut b = good();
    b["snippet"]["description"] = "é".repeat(2501).into(); // 5002 bytes
    assert_eq!(
        reason(&start(b, TOKEN, "snippet,status")),
        "invalidDescription"
    );
    let mut b = good();
    b["snippet"]["tags"] = serde_json::json!(vec!["ab cd"; 72]); // 72·7 + 71 = 575
    assert_eq!(reason(&start(b, TOKEN, "snippet,status")), "invalidTags");
    let mut b = good();
    b["status"] = serde_json::json!({});
    assert_eq!(
        reason(&start(b, TOKEN, "snippet,status")),
        "invalidVideoMetadata"
    );
    let mut b = good();
    b["status"] =
        serde_json::json!({"privacyStatus": "public", "publishAt": "2030-01-01T00:00:00Z"});
    assert_eq!(
        reason(&start(b, TOKEN, "snippet,status")),
        "invalidPublishAt"
    );
    let mut b = good();
    b["localizations"] = serde_json::json!({"fr": {"title": "t", "description": ""}});
    assert_eq!(
        reason(&start(b.clone(), TOKEN, "snippet,status,localizations")),
        "defaultLanguageNotSet"
    );
    assert_eq!(reason(&start(b, TOKEN, "snippet,status")), "invalidPart");

    let r = start(good(), TOKEN, "snippet,status");
    assert_eq!(r.status, 200);
    let session = r.header("location").unwrap().to_string();
    let put = |range: &str, ct: &str, data: Vec<u8>| {
        c.send(
            "PUT",
            &session,
            &[
                ("Authorization", &format!("Bearer {TOKEN}")),
                ("Content-Range", range),
            ],
            Body::Bytes {
                content_type: ct.into(),
                data,
            },
        )
        .unwrap()
    };
    // Not a multiple of 256 KiB and not the last chunk.
    assert_eq!(
        reason(&put("bytes 0-99999/600000", "video/mp4", vec![0; 100_000])),
        "invalidChunkSize"
    );
    // Not the announced type.
    assert_eq!(
        reason(&put("bytes 0-262143/600000", "video/webm", vec![0; UNIT])),
        "invalidContentType"
    );
    assert_eq!(
        put("bytes 0-262143/600000", "video/mp4", vec![0; UNIT]).status,
        308
    );
    // Not where the upload stands.
    assert_eq!(
        reason(&put("bytes 0-262143/600000", "video/mp4", vec![0; UNIT])),
        "badContentRange"
    );
    let q = put("bytes */600000", "video/mp4", Vec::new());
    assert_eq!((q.status, q.header("range")), (308, Some("bytes=0-262143")));
    let done = put(
        "bytes 262144-599999/600000",
        "video/mp4",
        vec![1; 600_000 - UNIT],
    );
    assert_eq!(done.status, 201);
    let id = done.json()["id"].as_str().unwrap().to_string();
    let again = put("bytes */600000", "video/mp4", Vec::new());
    assert_eq!(
        (again.status, again.json()["id"].as_str()),
        (200, Some(id.as_str()))
    );
}

#[test]
fn thumbnails_over_50_mb_are_refused_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = video_file(dir.path(), "v.mp4", 1000, 12);
    let yt = FakeYouTube::new(&[TOKEN]);
    let server = yt.serve();
    let mut state = UploadState::default();
    let id = simple(&server, &file, &mut state, UNIT as u64).unwrap();
    let (c, e) = (client(), endpoints(&server));

    let big = dir.path().join("big.png");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(youtube::THUMBNAIL_MAX_BYTES + 1).unwrap(); // sparse
    drop(f);
    let n = yt.requests().len();
    let err = set_thumbnail(&c, &e, TOKEN, &id, &big).unwrap_err();
    assert!(
        matches!(err, YouTubeError::Invalid(_)) && err.to_string().contains("50 MB"),
        "{err}"
    );
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "not an image").unwrap();
    assert!(matches!(
        set_thumbnail(&c, &e, TOKEN, &id, &text),
        Err(YouTubeError::Invalid(_))
    ));
    assert_eq!(yt.requests().len(), n);

    let png = dir.path().join("thumb.png");
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend(pattern(5000, 13));
    std::fs::write(&png, &bytes).unwrap();
    set_thumbnail(&c, &e, TOKEN, &id, &png).unwrap();
    let t = &yt.thumbnails()[0];
    assert_eq!(
        (t.video_id.as_str(), t.content_type.as_str()),
        (id.as_str(), "image/png")
    );
    assert!(t.data == bytes);
    let err = set_thumbnail(&c, &e, TOKEN, "nope", &png).unwrap_err();
    assert!(
        matches!(&err, YouTubeError::Rejected { status: 404, reason, .. } if reason == "videoNotFound"),
        "{err}"
    );
}

#[test]
fn captions_are_sent_as_multipart_and_parsed_by_the_fake() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = video_file(dir.path(), "v.mp4", 1000, 14);
    let yt = FakeYouTube::new(&[TOKEN]);
    let server = yt.serve();
    let mut state = UploadState::default();
    let id = simple(&server, &file, &mut state, UNIT as u64).unwrap();
    let (c, e) = (client(), endpoints(&server));
    let srt = "1\n00:00:00,000 --> 00:00:02,500\nこんにちは、世界 👋\n\n2\n00:00:02,500 --> 00:00:04,000\n--reelsmith_boundary? no: just text\n";
    let path = dir.path().join("ja.srt");
    std::fs::write(&path, srt).unwrap();
    let cap = insert_caption(&c, &e, TOKEN, &id, "ja", "日本語", &path).unwrap();
    let got = &yt.captions()[0];
    assert_eq!(got.id, cap);
    assert_eq!(
        (
            got.video_id.as_str(),
            got.language.as_str(),
            got.name.as_str()
        ),
        (id.as_str(), "ja", "日本語")
    );
    assert!(!got.is_draft);
    assert_eq!(got.media_type, "application/octet-stream");
    assert_eq!(got.data, srt.as_bytes());
    let vtt = dir.path().join("en.vtt");
    std::fs::write(&vtt, "WEBVTT\n\n00:00.000 --> 00:02.000\nHello\n").unwrap();
    insert_caption(&c, &e, TOKEN, &id, "en", "English", &vtt).unwrap();
    assert_eq!(yt.captions().len(), 2);
    let bad = dir.path().join("x.srt");
    std::fs::write(&bad, "no cues here").unwrap();
    let n = yt.requests().len();
    assert!(matches!(
        insert_caption(&c, &e, TOKEN, &id, "en", "x", &bad),
        Err(YouTubeError::Invalid(_))
    ));
    assert_eq!(yt.requests().len(), n);
}

#[test]
fn processing_is_followed_until_it_succeeds_or_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = video_file(dir.path(), "v.mp4", 1000, 15);
    let yt = FakeYouTube::new(&[TOKEN]);
    let server = yt.serve();
    let mut state = UploadState::default();
    let id = simple(&server, &file, &mut state, UNIT as u64).unwrap();
    let (c, e) = (client(), endpoints(&server));
    yt.set_processing(3, None);
    let mut seen = Vec::new();
    loop {
        let p = processing(&c, &e, TOKEN, &id).unwrap();
        seen.push((p.status.clone(), p.upload_status.clone()));
        assert_eq!(p.privacy, "unlisted");
        if p.status != ProcessingStatus::Processing {
            break;
        }
        assert!(seen.len() < 10);
    }
    assert_eq!(seen.len(), 4);
    assert_eq!(
        seen[0],
        (ProcessingStatus::Processing, "uploaded".to_string())
    );
    assert_eq!(
        seen[3],
        (ProcessingStatus::Succeeded, "processed".to_string())
    );

    yt.set_processing(0, Some("transcodeFailed"));
    let p = processing(&c, &e, TOKEN, &id).unwrap();
    assert_eq!(
        (p.status, p.failure_reason.as_deref()),
        (ProcessingStatus::Failed, Some("transcodeFailed"))
    );
    let err = processing(&c, &e, TOKEN, "missing").unwrap_err();
    assert!(
        matches!(&err, YouTubeError::Rejected { status: 404, .. }),
        "{err}"
    );
    assert_eq!(
        processing(&c, &e, "bad-token", &id).unwrap_err(),
        YouTubeError::Unauthorized
    );

    // And a playlist.
    let item = add_to_playlist(&c, &e, TOKEN, "PL123", &id).unwrap();
    assert!(!item.is_empty());
    assert_eq!(yt.playlist_items(), [("PL123".to_string(), id.clone())]);
}

// ---- A process killed with SIGKILL at random points --------------------------------------

/// Run as a child process by `uploads_survive_sigkill_at_random_points`: uploads the file named
/// by the environment, persisting its state atomically (write, then rename) after every change.
#[test]
#[ignore = "a child process of uploads_survive_sigkill_at_random_points"]
fn sigkill_child() {
    let Ok(api) = std::env::var("REELSMITH_TEST_YT_API") else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap();
    let file = PathBuf::from(var("REELSMITH_TEST_YT_FILE"));
    let state_path = PathBuf::from(var("REELSMITH_TEST_YT_STATE"));
    let mut state: UploadState = std::fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let endpoints = Endpoints {
        youtube_api: api,
        ..Endpoints::default()
    };
    let id = upload_video_with(
        &client(),
        &endpoints,
        TOKEN,
        &meta(),
        &file,
        &mut state,
        &mut |s: &UploadState| {
            let tmp = state_path.with_extension("tmp");
            std::fs::write(&tmp, serde_json::to_vec(s).map_err(|e| e.to_string())?)
                .and_then(|_| std::fs::rename(&tmp, &state_path))
                .map_err(|e| e.to_string())
        },
        &mut |_, _| true,
        &opts(UNIT as u64),
    )
    .unwrap();
    std::fs::write(state_path.with_extension("done"), id).unwrap();
}

#[cfg(unix)]
#[test]
fn uploads_survive_sigkill_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video_file(dir.path(), "v.mp4", 3 * 1024 * 1024 + 4321, 16);
    let state_path = dir.path().join("state.json");
    let yt = FakeYouTube::new(&[TOKEN]);
    yt.set_put_delay(Duration::from_millis(12));
    let server = yt.serve();
    let spawn = || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sigkill_child",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("REELSMITH_TEST_YT_API", server.url())
            .env("REELSMITH_TEST_YT_FILE", &file)
            .env("REELSMITH_TEST_YT_STATE", &state_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n.max(1)
    };
    let mut offsets = Vec::new();
    let mut kills = 0;
    let mut finished = false;
    for round in 0..40 {
        // Some rounds also drop a connection or answer a few 503s.
        match round % 4 {
            1 => yt.cut_next_put(next(UNIT as u64) as usize + 1),
            3 => yt.fail_next(503, 2),
            _ => {}
        }
        let mut child = spawn();
        // Kill once YouTube got a random part of what is left, or after a random time.
        let held = yt.session_progress().last().map_or(0, |p| p.0);
        let target = yt.bytes_received() + 1 + next((data.len() as u64 - held).min(UNIT as u64));
        let deadline = Instant::now() + Duration::from_millis(5 + next(200));
        loop {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            if yt.bytes_received() >= target || Instant::now() >= deadline {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                // Let the server read what the dead client left in its socket.
                std::thread::sleep(Duration::from_millis(30));
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(yt.wait_idle(Duration::from_secs(5)));
        eprintln!(
            "round {round}: target {target} received {} finished {finished} sessions {:?}",
            yt.bytes_received(),
            yt.session_progress()
        );
        if let Some(s) = std::fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<UploadState>(&b).ok())
        {
            offsets.push(s.offset);
        }
        if finished {
            break;
        }
    }
    if !finished {
        let status = spawn().wait().unwrap();
        assert!(status.success(), "the last run failed: {status}");
    }
    let id = std::fs::read_to_string(state_path.with_extension("done")).unwrap();
    let videos = yt.videos();
    assert_eq!(
        videos.len(),
        1,
        "one video, however many times the uploader died"
    );
    assert_eq!(videos[0].id, id);
    assert!(
        videos[0].bytes == data,
        "the uploaded bytes differ from the file"
    );
    let state: UploadState = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    assert_eq!(state.video_id.as_deref(), Some(id.as_str()));
    assert!(kills >= 6, "only {kills} kills landed");
    // The kills landed at different points of the upload.
    let mut seen = offsets;
    seen.dedup();
    assert!(seen.len() >= 5, "kills landed at too few points: {seen:?}");
}
