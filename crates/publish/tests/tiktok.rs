//! TikTok Content Posting against the loopback fake: chunk rules, every fault, resumption from
//! a persisted state after a simulated kill, privacy checks and platform errors as data.

use reelsmith_publish::testing::tiktok::FakeTikTok;
use reelsmith_publish::tiktok::{
    self, chunk_plan, ChunkPlan, PostMeta, PostMode, PublishStatus, TikTokError, UploadState,
    MAX_CHUNK, MAX_CHUNKS, MAX_LAST_CHUNK, MIN_CHUNK,
};
use reelsmith_publish::Client;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MB: u64 = 1_000_000;

fn client() -> Client {
    Client::new(Duration::from_secs(10), Duration::from_millis(1))
}

/// Deterministic bytes that differ from chunk to chunk.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn video(dir: &Path, name: &str, n: usize, seed: u64) -> (PathBuf, Vec<u8>) {
    let data = bytes(n, seed);
    let p = dir.join(name);
    std::fs::write(&p, &data).unwrap();
    (p, data)
}

/// What a studio keeps across a process's death: the last state `persist` saved. `kill_at`
/// makes that many-th save fail, as if the process died right before it.
#[derive(Default)]
struct Store {
    saved: Option<UploadState>,
    saves: usize,
    kill_at: Option<usize>,
}

impl Store {
    fn persist(&mut self, s: &UploadState) -> Result<(), String> {
        self.saves += 1;
        if Some(self.saves) == self.kill_at {
            return Err("killed".into());
        }
        self.saved = Some(s.clone());
        Ok(())
    }
}

fn run(
    fake: &FakeTikTok,
    meta: &PostMeta,
    file: &Path,
    store: &mut Store,
) -> Result<String, TikTokError> {
    let mut state = store.saved.clone().unwrap_or_default();
    tiktok::upload(
        &client(),
        &fake.endpoints(),
        FakeTikTok::TOKEN,
        meta,
        file,
        &mut state,
        &mut |s| store.persist(s),
        &mut |_, _| true,
    )
}

fn direct(privacy: &str) -> PostMeta {
    PostMeta::new("a #cat video by @reelsmith", privacy)
}

fn check_rules(p: &ChunkPlan) {
    assert!((1..=MAX_CHUNKS).contains(&p.count), "{p:?}");
    assert_eq!(p.count, p.total / p.chunk_size, "{p:?}");
    if p.total < MIN_CHUNK {
        assert_eq!((p.chunk_size, p.count), (p.total, 1));
    } else {
        assert!((MIN_CHUNK..=MAX_CHUNK).contains(&p.chunk_size), "{p:?}");
    }
    if p.total > MAX_CHUNK {
        assert!(p.count >= 2, "{p:?}");
    }
    let mut next = 0;
    for i in 0..p.count {
        let (a, b) = p.range(i);
        assert_eq!(a, next);
        if i + 1 < p.count {
            assert_eq!(b - a, p.chunk_size);
        } else {
            assert!(b - a >= p.chunk_size.min(p.total) && b - a <= MAX_LAST_CHUNK);
        }
        next = b;
    }
    assert_eq!(next, p.total);
}

#[test]
fn chunk_plans_follow_the_documented_rules() {
    // Under 5 MB: one chunk of the whole file.
    let p = chunk_plan(4 * MB).unwrap();
    assert_eq!((p.chunk_size, p.count), (4 * MB, 1));
    assert_eq!(p.content_range(0), "bytes 0-3999999/4000000");
    // TikTok's example: 50,000,123 bytes in 10,000,000-byte chunks, the last one longer.
    let p = chunk_plan(50_000_123).unwrap();
    assert_eq!((p.chunk_size, p.count), (10 * MB, 5));
    assert_eq!(p.range(4), (40_000_000, 50_000_123));
    // 64 MB (either reading) goes in several chunks.
    for total in [64 * MB, 64 << 20] {
        let p = chunk_plan(total).unwrap();
        assert_eq!((p.chunk_size, p.count), (10 * MB, total / (10 * MB)));
        check_rules(&p);
    }
    // 1.2 GB: 120 chunks of 10 MB.
    let p = chunk_plan(1_200_000_000).unwrap();
    assert_eq!((p.chunk_size, p.count), (10 * MB, 120));
    // More than 1000 chunks of 10 MB would be needed: larger chunks, at most 1000 of them.
    let p = chunk_plan(12_345_678_901).unwrap();
    assert_eq!((p.chunk_size, p.count), (12_345_679, 999));
    let p = chunk_plan(12_000_000_000).unwrap();
    assert_eq!((p.chunk_size, p.count), (12 * MB, 1000));
    assert!(p.chunk_size > 10 * MB);
    check_rules(&p);
    // Nothing, or more than 1000 chunks of 64 MB can hold: no plan.
    assert_eq!(chunk_plan(0), None);
    assert_eq!(chunk_plan(MAX_CHUNK * MAX_CHUNKS + MAX_CHUNK), None);
    for total in [
        1,
        MIN_CHUNK - 1,
        MIN_CHUNK,
        9_999_999,
        10 * MB,
        19_999_999,
        63_999_999,
        64_000_001,
        128 * MB + 1,
        4_000_000_000,
        10_000_000_000,
        10_000_000_001,
        64_000_000_000,
    ] {
        check_rules(&chunk_plan(total).unwrap());
    }
}

#[test]
fn direct_post_uploads_in_order_and_completes() {
    let fake = FakeTikTok::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video(dir.path(), "v.mp4", 35_000_017, 1);
    let mut meta = direct("MUTUAL_FOLLOW_FRIENDS");
    meta.brand_organic_toggle = true;
    meta.video_cover_timestamp_ms = Some(1500);
    fake.set_creator_field("duet_disabled", true.into());
    let mut store = Store::default();
    let mut seen = Vec::new();
    let mut state = UploadState::default();
    let id = tiktok::upload(
        &client(),
        &fake.endpoints(),
        FakeTikTok::TOKEN,
        &meta,
        &file,
        &mut state,
        &mut |s| store.persist(s),
        &mut |sent, total| {
            seen.push((sent, total));
            true
        },
    )
    .unwrap();
    assert_eq!(fake.video(&id).as_deref(), Some(&data[..]));
    assert!(state.done && state.next_chunk == 3 && store.saved == Some(state.clone()));
    assert_eq!(
        seen,
        [
            (0, 35_000_017),
            (10_000_000, 35_000_017),
            (20_000_000, 35_000_017),
            (35_000_017, 35_000_017)
        ]
    );
    let puts = fake.puts();
    assert_eq!(
        puts.iter()
            .map(|p| (p.content_range.as_str(), p.status))
            .collect::<Vec<_>>(),
        [
            ("bytes 0-9999999/35000017", 206),
            ("bytes 10000000-19999999/35000017", 206),
            ("bytes 20000000-35000016/35000017", 201)
        ]
    );
    let init = &fake.uploads()[0].init;
    assert_eq!(fake.uploads()[0].mode, "direct");
    assert_eq!(init["post_info"]["privacy_level"], "MUTUAL_FOLLOW_FRIENDS");
    assert_eq!(init["post_info"]["is_aigc"], true);
    assert_eq!(init["post_info"]["brand_organic_toggle"], true);
    assert_eq!(
        init["post_info"]["disable_duet"], true,
        "the creator's setting is kept"
    );
    assert_eq!(init["post_info"]["video_cover_timestamp_ms"], 1500);
    assert_eq!(init["source_info"]["total_chunk_count"], 3);
    assert_eq!(fake.creator_queries(), 1);
    // Status: processing for two polls, then published with a public id.
    let (c, e) = (client(), fake.endpoints());
    let st = |_: u32| tiktok::status(&c, &e, FakeTikTok::TOKEN, &id).unwrap();
    assert_eq!(st(0).status, PublishStatus::ProcessingUpload);
    assert_eq!(st(1).status, PublishStatus::ProcessingUpload);
    let done = st(2);
    assert_eq!(done.status, PublishStatus::PublishComplete);
    assert!(done.status.is_final() && done.post_ids.len() == 1);
    assert_eq!(done.uploaded_bytes, Some(35_000_017));
    // Done is done: calling again sends nothing.
    let again = run(&fake, &meta, &file, &mut store).unwrap();
    assert_eq!((again, fake.puts().len(), fake.inits()), (id, 3, 1));
}

#[test]
fn small_inbox_upload_goes_whole_without_creator_info() {
    let fake = FakeTikTok::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video(dir.path(), "v.webm", 3_000_001, 2);
    let mut meta = direct("PUBLIC_TO_EVERYONE");
    meta.mode = PostMode::Inbox;
    let id = run(&fake, &meta, &file, &mut Store::default()).unwrap();
    assert!(id.starts_with("v_inbox_file"), "{id}");
    assert_eq!(fake.video(&id).as_deref(), Some(&data[..]));
    assert_eq!(fake.creator_queries(), 0);
    let u = &fake.uploads()[0];
    assert_eq!((u.mode.as_str(), u.chunk_count), ("inbox", 1));
    assert!(u.init.get("post_info").is_none());
    fake.set_polls_to_complete(0);
    let st = tiktok::status(&client(), &fake.endpoints(), FakeTikTok::TOKEN, &id).unwrap();
    assert_eq!(st.status, PublishStatus::SendToUserInbox);
}

#[test]
fn every_fault_ends_in_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video(dir.path(), "v.mp4", 30_000_001, 3);
    type Fault = fn(&FakeTikTok);
    let faults: [(&str, Fault, usize); 6] = [
        ("cut mid-chunk", |f| f.cut_next_chunk(4_000_000), 1),
        ("cut after a few bytes", |f| f.cut_next_chunk(10), 1),
        ("5xx burst", |f| f.fail_next_chunks(4, 503), 1),
        (
            "answer lost after the chunk was kept",
            |f| f.drop_next_answer(),
            1,
        ),
        ("upload URL expired", |f| f.expire_upload_urls(), 2),
        (
            "502 then a cut",
            |f| {
                f.fail_next_chunks(1, 502);
                f.cut_next_chunk(123_456)
            },
            1,
        ),
    ];
    for (name, fault, inits) in faults {
        for before_chunk in 0..3 {
            let fake = FakeTikTok::start();
            let mut store = Store::default();
            let mut state = UploadState::default();
            let meta = direct("SELF_ONLY");
            let mut chunks_seen = 0;
            let fk = &fake;
            let id = tiktok::upload(
                &client(),
                &fake.endpoints(),
                FakeTikTok::TOKEN,
                &meta,
                &file,
                &mut state,
                &mut |s| store.persist(s),
                &mut |sent, total| {
                    if sent < total {
                        if chunks_seen == before_chunk {
                            fault(fk);
                        }
                        chunks_seen += 1;
                    }
                    true
                },
            )
            .unwrap_or_else(|e| panic!("{name} before chunk {before_chunk}: {e}"));
            assert_eq!(
                fake.video(&id).as_deref(),
                Some(&data[..]),
                "{name} before chunk {before_chunk}"
            );
            assert_eq!(fake.inits(), inits, "{name} before chunk {before_chunk}");
            assert_eq!(fake.videos().len(), 1);
        }
    }
}

#[test]
fn a_killed_upload_resumes_in_a_new_call_at_every_point() {
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video(dir.path(), "v.mp4", 30_000_001, 4);
    let meta = direct("SELF_ONLY");
    // Saves: the init, chunks 0 and 1 acknowledged, the end.
    for kill_at in 1..=4 {
        for cut in [false, true] {
            let fake = FakeTikTok::start();
            let mut store = Store {
                kill_at: Some(kill_at),
                ..Store::default()
            };
            let e = run(&fake, &meta, &file, &mut store).unwrap_err();
            assert!(matches!(e, TikTokError::Persist(_)), "{e}");
            if cut {
                // The new process's first chunk is cut off as well.
                fake.cut_next_chunk(1000);
            }
            store.kill_at = None;
            let id = run(&fake, &meta, &file, &mut store)
                .unwrap_or_else(|e| panic!("kill at save {kill_at}: {e}"));
            assert_eq!(
                fake.video(&id).as_deref(),
                Some(&data[..]),
                "kill at {kill_at}"
            );
            // Killed before the init was saved: that init is lost and a new one made.
            assert_eq!(
                fake.inits(),
                if kill_at == 1 { 2 } else { 1 },
                "kill at {kill_at}"
            );
            let st = store.saved.clone().unwrap();
            assert!(st.done && st.publish_id.as_deref() == Some(id.as_str()));
        }
    }
    // A chunk acknowledged by TikTok but not saved is found out by TikTok's order check (416)
    // and not sent twice into the file.
    let fake = FakeTikTok::start();
    let mut store = Store {
        kill_at: Some(3),
        ..Store::default()
    };
    run(&fake, &meta, &file, &mut store).unwrap_err();
    store.kill_at = None;
    let id = run(&fake, &meta, &file, &mut store).unwrap();
    let statuses: Vec<u16> = fake.puts().iter().map(|p| p.status).collect();
    assert_eq!(statuses, [206, 206, 416, 201]);
    assert_eq!(fake.video(&id).as_deref(), Some(&data[..]));
}

#[test]
fn a_state_older_than_the_upload_url_starts_a_new_upload() {
    let fake = FakeTikTok::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video(dir.path(), "v.mp4", 21_000_000, 5);
    let meta = direct("SELF_ONLY");
    let mut store = Store {
        kill_at: Some(3),
        ..Store::default()
    };
    run(&fake, &meta, &file, &mut store).unwrap_err();
    let saved = store.saved.as_mut().unwrap();
    assert_eq!(saved.next_chunk, 1);
    saved.url_created_ms -= 2 * 3600 * 1000;
    store.kill_at = None;
    let id = run(&fake, &meta, &file, &mut store).unwrap();
    assert_eq!(fake.inits(), 2);
    assert_eq!(fake.uploads()[1].publish_id, id);
    assert_eq!(fake.video(&id).as_deref(), Some(&data[..]));
}

#[test]
fn a_changed_file_is_refused() {
    let fake = FakeTikTok::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = video(dir.path(), "v.mp4", 21_000_000, 6);
    let meta = direct("SELF_ONLY");
    let mut store = Store {
        kill_at: Some(2),
        ..Store::default()
    };
    run(&fake, &meta, &file, &mut store).unwrap_err();
    std::fs::write(&file, bytes(21_000_000, 7)).unwrap();
    store.kill_at = None;
    match run(&fake, &meta, &file, &mut store) {
        Err(TikTokError::File(m)) => assert!(m.contains("changed"), "{m}"),
        r => panic!("{r:?}"),
    }
    assert_eq!(fake.puts().len(), 1);
}

#[test]
fn privacy_levels_not_offered_are_refused_with_the_offered_ones() {
    let fake = FakeTikTok::start();
    fake.set_unaudited(true);
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = video(dir.path(), "v.mp4", 1_000_000, 8);
    let e = run(
        &fake,
        &direct("PUBLIC_TO_EVERYONE"),
        &file,
        &mut Store::default(),
    )
    .unwrap_err();
    match &e {
        TikTokError::Rejected {
            code,
            message,
            hint,
        } => {
            assert_eq!(code, "privacy_level_option_mismatch");
            assert!(message.contains("offered now: SELF_ONLY"), "{message}");
            assert!(hint.contains("unaudited"), "{hint}");
        }
        e => panic!("{e:?}"),
    }
    assert_eq!((fake.creator_queries(), fake.inits()), (1, 0));
    // What creator_info offers is what counts.
    fake.set_unaudited(false);
    fake.set_privacy_options(&["FOLLOWER_OF_CREATOR", "SELF_ONLY"]);
    let e = run(
        &fake,
        &direct("MUTUAL_FOLLOW_FRIENDS"),
        &file,
        &mut Store::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("FOLLOWER_OF_CREATOR, SELF_ONLY"), "{e}");
    // An unaudited client whose creator_info still offers public posting is refused by the init.
    fake.set_unaudited(true);
    fake.set_privacy_options(&["PUBLIC_TO_EVERYONE", "SELF_ONLY"]);
    match run(
        &fake,
        &direct("PUBLIC_TO_EVERYONE"),
        &file,
        &mut Store::default(),
    ) {
        Err(TikTokError::Rejected { code, hint, .. }) => {
            assert_eq!(code, "unaudited_client_can_only_post_to_private_accounts");
            assert!(hint.contains("private"), "{hint}");
        }
        r => panic!("{r:?}"),
    }
    // Privately it goes through.
    let id = run(&fake, &direct("SELF_ONLY"), &file, &mut Store::default()).unwrap();
    assert!(fake.video(&id).is_some());
    // Branded content may not be private; a video longer than the creator may post is refused.
    let mut m = direct("SELF_ONLY");
    m.brand_content_toggle = true;
    assert!(run(&fake, &m, &file, &mut Store::default())
        .unwrap_err()
        .to_string()
        .contains("branded"));
    let mut m = direct("SELF_ONLY");
    m.duration_s = Some(301.0);
    assert!(run(&fake, &m, &file, &mut Store::default())
        .unwrap_err()
        .to_string()
        .contains("at most 300 s"));
    assert_eq!(fake.inits(), 1);
}

#[test]
fn platform_errors_are_data() {
    let fake = FakeTikTok::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video(dir.path(), "v.mp4", 1_000_000, 9);
    let meta = direct("SELF_ONLY");
    let init = "/v2/post/publish/video/init/";
    fake.fail_next_call(
        init,
        403,
        "spam_risk_too_many_posts",
        "The daily post cap from the API is reached for the current user.",
    );
    let e = run(&fake, &meta, &file, &mut Store::default()).unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(24 * 3600)), "{e}");
    assert!(e.to_string().contains("daily post cap") && e.to_string().contains("24 h"));
    fake.fail_next_call(init, 429, "rate_limit_exceeded", "Rate limit exceeded.");
    let e = run(&fake, &meta, &file, &mut Store::default()).unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
    let mut inbox = meta.clone();
    inbox.mode = PostMode::Inbox;
    fake.fail_next_call(
        "/v2/post/publish/inbox/video/init/",
        403,
        "spam_risk_too_many_pending_share",
        "The daily upload cap from the API is reached.",
    );
    let e = run(&fake, &inbox, &file, &mut Store::default()).unwrap_err();
    assert!(
        e.retry_after().is_some() && e.to_string().contains("TikTok app"),
        "{e}"
    );
    fake.fail_next_call(
        "/v2/post/publish/creator_info/query/",
        403,
        "spam_risk_user_banned_from_posting",
        "The user is banned from making new posts.",
    );
    match run(&fake, &meta, &file, &mut Store::default()) {
        Err(TikTokError::Rejected { message, hint, .. }) => {
            assert!(
                message.contains("banned") && message.contains("log_id"),
                "{message}"
            );
            assert!(hint.contains("banned"));
        }
        r => panic!("{r:?}"),
    }
    // A bad token.
    let e = tiktok::upload(
        &client(),
        &fake.endpoints(),
        "expired",
        &meta,
        &file,
        &mut UploadState::default(),
        &mut |_| Ok(()),
        &mut |_, _| true,
    )
    .unwrap_err();
    assert!(
        matches!(e, TikTokError::Unauthorized { ref code, .. } if code == "access_token_invalid"),
        "{e}"
    );
    // A 5xx on the API is retried.
    fake.fail_next_call(init, 500, "internal_error", "oops");
    let id = run(&fake, &meta, &file, &mut Store::default()).unwrap();
    assert_eq!(fake.video(&id).as_deref(), Some(&data[..]));
    // Processing failures come with TikTok's reason and a hint.
    fake.fail_processing("frame_rate_check_failed");
    fake.set_polls_to_complete(0);
    let st = tiktok::status(&client(), &fake.endpoints(), FakeTikTok::TOKEN, &id).unwrap();
    assert_eq!(st.status, PublishStatus::Failed);
    assert_eq!(st.fail_reason.as_deref(), Some("frame_rate_check_failed"));
    assert!(st.hint().unwrap().contains("fps"));
    // Nothing reachable: transient, with the state kept.
    let gone = reelsmith_publish::Endpoints {
        tiktok_api: "http://127.0.0.1:9".into(),
        ..Default::default()
    };
    let e = tiktok::upload(
        &client(),
        &gone,
        FakeTikTok::TOKEN,
        &meta,
        &file,
        &mut UploadState::default(),
        &mut |_| Ok(()),
        &mut |_, _| true,
    )
    .unwrap_err();
    assert!(matches!(e, TikTokError::Transient(_)), "{e}");
}

#[test]
fn cancelling_keeps_the_state_for_later() {
    let fake = FakeTikTok::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video(dir.path(), "v.mp4", 21_000_000, 10);
    let meta = direct("SELF_ONLY");
    let mut store = Store::default();
    let mut state = UploadState::default();
    let e = tiktok::upload(
        &client(),
        &fake.endpoints(),
        FakeTikTok::TOKEN,
        &meta,
        &file,
        &mut state,
        &mut |s| store.persist(s),
        &mut |sent, _| sent == 0,
    )
    .unwrap_err();
    assert_eq!(e, TikTokError::Cancelled);
    assert_eq!(store.saved.as_ref().unwrap().next_chunk, 1);
    let id = run(&fake, &meta, &file, &mut store).unwrap();
    assert_eq!(fake.video(&id).as_deref(), Some(&data[..]));
    assert_eq!(fake.puts().len(), 2);
}

/// The fake holds the client to the rules: a test passing against it means something.
#[test]
fn the_fake_refuses_what_tiktok_refuses() {
    use reelsmith_publish::http::Body;
    use serde_json::json;
    let fake = FakeTikTok::start();
    let c = client();
    let auth = format!("Bearer {}", FakeTikTok::TOKEN);
    let init = |size: u64, chunk: u64, count: u64| {
        c.send(
            "POST",
            &format!("{}/v2/post/publish/inbox/video/init/", fake.url()),
            &[("Authorization", &auth)],
            Body::Json(
                json!({"source_info": {"source": "FILE_UPLOAD", "video_size": size,
                "chunk_size": chunk, "total_chunk_count": count}}),
            ),
        )
        .unwrap()
    };
    for (size, chunk, count) in [
        (50_000_123, 10 * MB, 6),
        (4 * MB, 2 * MB, 2),
        (70 * MB, 70 * MB, 1),
        (300 * MB, 100 * MB, 3),
        (30 * MB, 4 * MB, 7),
    ] {
        let r = init(size, chunk, count);
        assert_eq!(r.status, 400, "{size} {chunk} {count}");
        assert_eq!(r.json()["error"]["code"], "invalid_params");
    }
    let r = init(20 * MB, 10 * MB, 2);
    assert_eq!(r.json()["error"]["code"], "ok");
    let url = r.json()["data"]["upload_url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&fake.url()), "{url}");
    let put = |range: &str, n: usize, ct: &str| {
        c.send(
            "PUT",
            &url,
            &[("Content-Range", range)],
            Body::Bytes {
                content_type: ct.into(),
                data: vec![1; n],
            },
        )
        .unwrap()
        .status
    };
    let n = 10_000_000;
    assert_eq!(put("bytes 10000000-19999999/20000000", n, "video/mp4"), 416);
    assert_eq!(
        put("bytes 0-9999999/20000000", n, "application/octet-stream"),
        400
    );
    assert_eq!(put("bytes 0-9999998/20000000", n - 1, "video/mp4"), 400);
    assert_eq!(put("bytes 0-9999999/20000001", n, "video/mp4"), 400);
    assert_eq!(put("bytes 0-9999999/20000000", n, "video/mp4"), 206);
    assert_eq!(put("bytes 0-9999999/20000000", n, "video/mp4"), 416);
    fake.expire_upload_urls();
    assert_eq!(put("bytes 10000000-19999999/20000000", n, "video/mp4"), 403);
    let r = c
        .send(
            "POST",
            &format!("{}/v2/post/publish/creator_info/query/", fake.url()),
            &[("Authorization", "Bearer nope")],
            Body::Json(json!({})),
        )
        .unwrap();
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (401, Some("access_token_invalid"))
    );
}
