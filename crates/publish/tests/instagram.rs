//! Instagram Reels against the loopback fakes of the Graph API and the upload host: both ways
//! of making a container, every upload fault, resumption after a simulated kill, container
//! polling, publishing, the publishing limit and platform errors as data.

use reelsmith_publish::instagram::{
    self, ContainerStatus, InstagramError, Published, ReelMeta, UploadState,
};
use reelsmith_publish::testing::instagram::FakeInstagram;
use reelsmith_publish::testing::{Reply, Request, Server};
use reelsmith_publish::Client;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TOKEN: &str = FakeInstagram::TOKEN;
const USER: &str = FakeInstagram::USER_ID;

fn client() -> Client {
    Client::new(Duration::from_secs(10), Duration::from_millis(1))
}

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

fn video(dir: &Path, n: usize, seed: u64) -> (PathBuf, Vec<u8>) {
    let data = bytes(n, seed);
    let p = dir.join("reel.mp4");
    std::fs::write(&p, &data).unwrap();
    (p, data)
}

/// The last state `persist` saved; `kill_at` fails that many-th save, as if the process died.
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

fn up(
    fake: &FakeInstagram,
    meta: &ReelMeta,
    file: &Path,
    store: &mut Store,
) -> Result<String, InstagramError> {
    let mut state = store.saved.clone().unwrap_or_default();
    instagram::upload(
        &client(),
        &fake.endpoints(),
        TOKEN,
        USER,
        meta,
        file,
        &mut state,
        &mut |s| store.persist(s),
        &mut |_, _| true,
    )
}

fn wait(fake: &FakeInstagram, id: &str) -> Result<ContainerStatus, InstagramError> {
    instagram::wait_for_container(
        &client(),
        &fake.endpoints(),
        TOKEN,
        id,
        Duration::from_millis(1),
        10,
    )
}

fn publish(fake: &FakeInstagram, store: &mut Store) -> Result<Published, InstagramError> {
    let mut state = store.saved.clone().unwrap_or_default();
    instagram::publish(
        &client(),
        &fake.endpoints(),
        TOKEN,
        USER,
        &mut state,
        &mut |s| store.persist(s),
    )
}

#[test]
fn resumable_upload_polls_to_finished_and_publishes() {
    let fake = FakeInstagram::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video(dir.path(), 3_000_003, 1);
    let mut meta = ReelMeta::new("Dawn over the harbour #reels #anime");
    meta.thumb_offset_ms = Some(2000);
    meta.is_paid_partnership = true;
    let mut store = Store::default();
    let mut seen = Vec::new();
    let mut state = UploadState::default();
    let id = instagram::upload(
        &client(),
        &fake.endpoints(),
        TOKEN,
        USER,
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
    assert_eq!(seen, [(0, 3_000_003), (3_000_003, 3_000_003)]);
    assert_eq!(fake.video(&id).as_deref(), Some(&data[..]));
    assert!(state.uploaded && store.saved == Some(state.clone()));
    let c = fake.container(&id).unwrap();
    assert_eq!(c.params["media_type"], "REELS");
    assert_eq!(c.params["upload_type"], "resumable");
    assert_eq!(c.params["caption"], "Dawn over the harbour #reels #anime");
    assert_eq!(c.params["share_to_feed"], "true");
    assert_eq!(c.params["is_ai_generated"], "true");
    assert_eq!(c.params["is_paid_partnership"], "true");
    assert_eq!(c.params["thumb_offset"], "2000");
    assert_eq!(fake.upload_requests(), [(0, 3_000_003, true)]);
    // Not ready yet: publishing says so and publishes nothing.
    assert!(matches!(
        publish(&fake, &mut store),
        Err(InstagramError::Processing { .. })
    ));
    // Two polls in progress, then FINISHED.
    let c = client();
    let e = fake.endpoints();
    let st = instagram::container_status(&c, &e, TOKEN, &id).unwrap();
    assert_eq!(st.status_code, ContainerStatus::InProgress);
    assert_eq!(wait(&fake, &id).unwrap(), ContainerStatus::Finished);
    let Published::Media(media) = publish(&fake, &mut store).unwrap() else {
        panic!("not published")
    };
    assert_eq!(fake.published_video(&media).as_deref(), Some(&data[..]));
    assert_eq!(
        store.saved.as_ref().unwrap().published_media_id.as_deref(),
        Some(media.as_str())
    );
    assert_eq!(fake.quota_used(), 1);
    // Publishing again is harmless.
    assert_eq!(
        publish(&fake, &mut store).unwrap(),
        Published::Media(media.clone())
    );
    let mut forgot = store.saved.clone().unwrap();
    forgot.published_media_id = None;
    let r = instagram::publish(&c, &e, TOKEN, USER, &mut forgot, &mut |_| Ok(())).unwrap();
    assert_eq!(r, Published::Earlier);
    assert_eq!(fake.published().len(), 1);
}

#[test]
fn video_url_containers_are_fetched_by_instagram() {
    let fake = FakeInstagram::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video(dir.path(), 2_000_000, 2);
    let served = data.clone();
    let host = Server::start(move |req: &Request| {
        if req.head.path() == "/reel.mp4" {
            Reply::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), "video/mp4".into())],
                body: served.clone(),
            }
        } else {
            Reply::status(404)
        }
    });
    let mut meta = ReelMeta::new("from a public URL");
    meta.video_url = Some(format!("{}/reel.mp4", host.url()));
    meta.share_to_feed = false;
    let mut store = Store::default();
    let id = up(&fake, &meta, &file, &mut store).unwrap();
    assert!(fake.upload_requests().is_empty());
    let c = fake.container(&id).unwrap();
    assert_eq!(c.params["video_url"], meta.video_url.clone().unwrap());
    assert_eq!(c.params["share_to_feed"], "false");
    assert!(!c.params.contains_key("upload_type"));
    assert_eq!(wait(&fake, &id).unwrap(), ContainerStatus::Finished);
    let Published::Media(media) = publish(&fake, &mut store).unwrap() else {
        panic!()
    };
    assert_eq!(fake.published_video(&media).as_deref(), Some(&data[..]));
    // A URL Instagram cannot fetch ends in ERROR with the reason.
    meta.video_url = Some(format!("{}/missing.mp4", host.url()));
    let id = up(&fake, &meta, &file, &mut Store::default()).unwrap();
    match wait(&fake, &id) {
        Err(InstagramError::ContainerFailed { status, .. }) => {
            assert!(status.contains("HTTP 404"), "{status}")
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn every_upload_fault_ends_in_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video(dir.path(), 6_000_011, 3);
    type Fault = fn(&FakeInstagram);
    let faults: [(&str, Fault, usize); 7] = [
        ("cut mid-body", |f| f.cut_next_upload(2_500_000), 1),
        ("cut at once", |f| f.cut_next_upload(1), 1),
        ("retriable 503s", |f| f.fail_next_uploads(3), 1),
        ("answer lost", |f| f.drop_next_upload_answer(), 1),
        ("graph 500s", |f| f.fail_next_graph(3), 1),
        (
            "cut, no offset reported",
            |f| {
                f.set_reports_offset(false);
                f.cut_next_upload(3_000_000)
            },
            1,
        ),
        ("two cuts", |f| f.cut_next_upload(1_000_000), 1),
    ];
    for (name, fault, containers) in faults {
        let fake = FakeInstagram::start();
        fault(&fake);
        let mut store = Store::default();
        let twice = name == "two cuts";
        let mut calls = 0;
        let fk = &fake;
        let mut state = UploadState::default();
        let id = instagram::upload(
            &client(),
            &fake.endpoints(),
            TOKEN,
            USER,
            &ReelMeta::new(name),
            &file,
            &mut state,
            &mut |s| store.persist(s),
            &mut |sent, total| {
                calls += 1;
                if twice && calls == 2 && sent < total {
                    fk.cut_next_upload(1_500_000);
                }
                true
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(fake.video(&id).as_deref(), Some(&data[..]), "{name}");
        assert_eq!(fake.containers_made(), containers, "{name}");
        let reqs = fake.upload_requests();
        if name.starts_with("cut mid") {
            // Resumed from what the upload host kept, not from zero.
            assert_eq!(reqs.len(), 2, "{reqs:?}");
            assert_eq!(reqs[1].0, 2_500_000, "{reqs:?}");
        }
        if name.contains("no offset") {
            assert_eq!(reqs.last().unwrap().0, 0, "{reqs:?}");
        }
        assert_eq!(
            wait(&fake, &id).unwrap(),
            ContainerStatus::Finished,
            "{name}"
        );
    }
}

#[test]
fn a_killed_upload_resumes_in_a_new_call_at_every_point() {
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video(dir.path(), 5_000_001, 4);
    let meta = ReelMeta::new("resumed");
    // Saves: the container, the file in.
    for kill_at in 1..=2 {
        for cut in [None, Some(10), Some(4_000_000)] {
            let fake = FakeInstagram::start();
            if let Some(n) = cut {
                fake.cut_next_upload(n);
            }
            let mut store = Store {
                kill_at: Some(kill_at),
                ..Store::default()
            };
            match up(&fake, &meta, &file, &mut store) {
                Err(InstagramError::Persist(_)) => {}
                r => panic!("kill at {kill_at}, cut {cut:?}: {r:?}"),
            }
            store.kill_at = None;
            let id = up(&fake, &meta, &file, &mut store)
                .unwrap_or_else(|e| panic!("kill at {kill_at}, cut {cut:?}: {e}"));
            assert_eq!(
                fake.video(&id).as_deref(),
                Some(&data[..]),
                "kill at {kill_at}"
            );
            assert_eq!(
                fake.containers_made(),
                if kill_at == 1 { 2 } else { 1 },
                "kill at {kill_at}"
            );
            wait(&fake, &id).unwrap();
            let Published::Media(m) = publish(&fake, &mut store).unwrap() else {
                panic!()
            };
            assert_eq!(fake.published_video(&m).as_deref(), Some(&data[..]));
        }
    }
    // Killed while the bytes were on their way: the new process asks how much arrived and
    // sends only the rest.
    let fake = FakeInstagram::start();
    let mut store = Store::default();
    fake.cut_next_upload(3_000_000);
    let mut state = UploadState::default();
    let e = instagram::upload(
        &client(),
        &fake.endpoints(),
        TOKEN,
        USER,
        &meta,
        &file,
        &mut state,
        &mut |s| store.persist(s),
        // Stops (as if killed) before the retry.
        &mut |sent, _| sent == 0,
    );
    assert_eq!(e.unwrap_err(), InstagramError::Cancelled);
    let id = up(&fake, &meta, &file, &mut store).unwrap();
    assert_eq!(fake.video(&id).as_deref(), Some(&data[..]));
    let reqs = fake.upload_requests();
    assert_eq!(reqs, [(0, 3_000_000, false), (3_000_000, 2_000_001, true)]);
}

#[test]
fn an_expired_container_is_replaced_on_resume() {
    let fake = FakeInstagram::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video(dir.path(), 1_000_000, 5);
    let meta = ReelMeta::new("late");
    let mut store = Store {
        kill_at: Some(2),
        ..Store::default()
    };
    fake.cut_next_upload(100);
    up(&fake, &meta, &file, &mut store).unwrap_err();
    fake.expire_containers();
    store.kill_at = None;
    let id = up(&fake, &meta, &file, &mut store).unwrap();
    assert_eq!(fake.containers_made(), 2);
    assert_eq!(fake.video(&id).as_deref(), Some(&data[..]));
    // An expired container cannot be published: the error says to publish again.
    let old = fake.published().len();
    fake.expire_containers();
    match publish(&fake, &mut store) {
        Err(InstagramError::ContainerFailed {
            status_code, hint, ..
        }) => {
            assert_eq!(status_code, "EXPIRED");
            assert!(hint.contains("24 hours"), "{hint}");
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(fake.published().len(), old);
}

#[test]
fn processing_errors_carry_the_platform_status_text() {
    let fake = FakeInstagram::start();
    fake.fail_processing("Error: The video's aspect ratio is not supported (2207009)");
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = video(dir.path(), 1_000_000, 6);
    let mut store = Store::default();
    let id = up(&fake, &ReelMeta::new("wide"), &file, &mut store).unwrap();
    match wait(&fake, &id) {
        Err(InstagramError::ContainerFailed {
            container_id,
            status_code,
            status,
            hint,
        }) => {
            assert_eq!((container_id, status_code.as_str()), (id, "ERROR"));
            assert!(status.contains("aspect ratio"), "{status}");
            assert!(hint.contains("Reels specifications"), "{hint}");
        }
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        publish(&fake, &mut store),
        Err(InstagramError::ContainerFailed { .. })
    ));
    assert!(fake.published().is_empty());
}

#[test]
fn the_publishing_limit_is_asked_and_respected() {
    let fake = FakeInstagram::start();
    let c = client();
    let e = fake.endpoints();
    fake.set_quota(7, 25);
    let l = instagram::publishing_limit(&c, &e, TOKEN, USER).unwrap();
    assert_eq!((l.used, l.limit, l.window_s), (7, 25, 86400));
    assert!(!l.exhausted());
    // Exhausted before the upload: no container is made (it would expire unpublished).
    fake.set_quota(100, 100);
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = video(dir.path(), 1_000_000, 7);
    let meta = ReelMeta::new("one too many");
    let mut store = Store::default();
    let err = up(&fake, &meta, &file, &mut store).unwrap_err();
    assert_eq!(err.retry_after(), Some(instagram::LIMIT_RECHECK), "{err}");
    assert!(err.to_string().contains("100 of 100"), "{err}");
    assert_eq!(fake.containers_made(), 0);
    // Exhausted between upload and publish: the publish waits, nothing is published.
    fake.set_quota(99, 100);
    let id = up(&fake, &meta, &file, &mut store).unwrap();
    wait(&fake, &id).unwrap();
    fake.set_quota(100, 100);
    let err = publish(&fake, &mut store).unwrap_err();
    assert!(matches!(err, InstagramError::Quota { .. }), "{err}");
    assert!(fake.published().is_empty());
    fake.set_quota(99, 100);
    let Published::Media(m) = publish(&fake, &mut store).unwrap() else {
        panic!()
    };
    assert_eq!(fake.published_video(&m).as_deref(), Some(&data[..]));
}

#[test]
fn lost_publish_answers_do_not_publish_twice() {
    let fake = FakeInstagram::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = video(dir.path(), 1_000_000, 8);
    let mut store = Store::default();
    let id = up(&fake, &ReelMeta::new("once"), &file, &mut store).unwrap();
    wait(&fake, &id).unwrap();
    fake.drop_next_publish_answer();
    assert_eq!(publish(&fake, &mut store).unwrap(), Published::Earlier);
    assert_eq!(fake.published().len(), 1);
    assert_eq!(fake.quota_used(), 1);
}

#[test]
fn platform_errors_are_data() {
    let fake = FakeInstagram::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = video(dir.path(), 1_000_000, 9);
    let e = instagram::upload(
        &client(),
        &fake.endpoints(),
        "stale-token",
        USER,
        &ReelMeta::new("x"),
        &file,
        &mut UploadState::default(),
        &mut |_| Ok(()),
        &mut |_, _| true,
    )
    .unwrap_err();
    match e {
        InstagramError::Unauthorized { code, message } => {
            assert_eq!(code, 190);
            assert!(message.contains("access token"), "{message}");
        }
        e => panic!("{e:?}"),
    }
    // A resumed upload with a bad token: a token problem too.
    let mut store = Store::default();
    let id = up(&fake, &ReelMeta::new("x"), &file, &mut store).unwrap();
    let url = instagram::upload_url(&fake.endpoints(), &id);
    assert!(url.starts_with(&fake.upload_url()));
    let mut state = store.saved.clone().unwrap();
    state.uploaded = false;
    state.offset = 0;
    let e = instagram::upload(
        &client(),
        &fake.endpoints(),
        "stale-token",
        USER,
        &ReelMeta::new("x"),
        &file,
        &mut state,
        &mut |_| Ok(()),
        &mut |_, _| true,
    )
    .unwrap_err();
    assert!(matches!(e, InstagramError::Unauthorized { .. }), "{e:?}");
    // A changed file is refused.
    let mut saved = store.saved.clone().unwrap();
    saved.uploaded = false;
    std::fs::write(&file, bytes(1_000_000, 99)).unwrap();
    let e = instagram::upload(
        &client(),
        &fake.endpoints(),
        TOKEN,
        USER,
        &ReelMeta::new("x"),
        &file,
        &mut saved,
        &mut |_| Ok(()),
        &mut |_, _| true,
    )
    .unwrap_err();
    assert!(
        matches!(&e, InstagramError::File(m) if m.contains("changed")),
        "{e:?}"
    );
    // Captions are fitted before they are sent: 31 hashtags become 30.
    let tags: String = (0..31).map(|i| format!(" #t{i}")).collect();
    let id = up(
        &fake,
        &ReelMeta::new(format!("many{tags}")),
        &file,
        &mut Store::default(),
    )
    .unwrap();
    let caption = fake.container(&id).unwrap().params["caption"].clone();
    assert_eq!(caption.matches('#').count(), 30, "{caption}");
    // Nothing reachable: transient.
    let gone = reelsmith_publish::Endpoints {
        instagram_api: "http://127.0.0.1:9".into(),
        ..Default::default()
    };
    let e = instagram::publishing_limit(&client(), &gone, TOKEN, USER).unwrap_err();
    assert!(matches!(e, InstagramError::Transient(_)), "{e:?}");
}

/// The fakes hold the client to the protocol: a test passing against them means something.
#[test]
fn the_fake_refuses_what_instagram_refuses() {
    use reelsmith_publish::http::Body;
    let fake = FakeInstagram::start();
    let c = client();
    let graph = |method: &str, path: &str, form: Vec<(&str, &str)>, token: &str| {
        let body = Body::Form(
            form.into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let auth = format!("Bearer {token}");
        c.send(
            method,
            &format!("{}{path}", fake.graph_url()),
            &[("Authorization", &auth)],
            body,
        )
        .unwrap()
    };
    let media = format!("/v24.0/{USER}/media");
    let r = graph("POST", &media, vec![("media_type", "REELS")], TOKEN);
    assert_eq!(r.json()["error"]["code"], 100);
    let r = graph(
        "POST",
        &media,
        vec![("media_type", "REELS"), ("upload_type", "resumable")],
        "bad",
    );
    assert_eq!(r.json()["error"]["code"], 190);
    let r = graph(
        "POST",
        &media,
        vec![("media_type", "REELS"), ("upload_type", "resumable")],
        TOKEN,
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    let uri = r.json()["uri"].as_str().unwrap().to_string();
    assert_eq!(uri, instagram::upload_url(&fake.endpoints(), &id));
    // The upload goes to the upload host, not the Graph host.
    let on_graph = c
        .send(
            "POST",
            &format!("{}/ig-api-upload/v24.0/{id}", fake.graph_url()),
            &[],
            Body::Empty,
        )
        .unwrap();
    assert!(!on_graph.ok());
    let send = |offset: &str, size: &str, n: usize, auth: &str| {
        c.send(
            "POST",
            &uri,
            &[
                ("Authorization", auth),
                ("offset", offset),
                ("file_size", size),
            ],
            Body::Bytes {
                content_type: "application/octet-stream".into(),
                data: vec![7; n],
            },
        )
        .unwrap()
    };
    let oauth = format!("OAuth {TOKEN}");
    let r = send("0", "100", 100, &format!("Bearer {TOKEN}"));
    assert!(
        r.text().contains("unauthorized user request"),
        "{}",
        r.text()
    );
    let r = send("0", "100", 40, &oauth);
    assert_eq!(r.json()["debug_info"]["type"], "PartialRequestError");
    let r = send("50", "100", 50, &oauth);
    assert_eq!(r.json()["debug_info"]["type"], "OffsetInvalidError");
    let r = send("40", "100", 60, &oauth);
    assert_eq!(r.json()["success"], true);
    // Not publishable before FINISHED; a made-up creation id is refused.
    let r = graph(
        "POST",
        &format!("/v24.0/{USER}/media_publish"),
        vec![("creation_id", &id)],
        TOKEN,
    );
    assert_eq!(
        (
            r.json()["error"]["code"].as_i64(),
            r.json()["error"]["error_subcode"].as_i64()
        ),
        (Some(9007), Some(2207027))
    );
    let r = graph(
        "POST",
        &format!("/v24.0/{USER}/media_publish"),
        vec![("creation_id", "42")],
        TOKEN,
    );
    assert_eq!(r.json()["error"]["code"], 100);
    let r = graph("GET", "/media", vec![], TOKEN);
    assert_eq!(r.json()["error"]["code"], 2635);
}

#[test]
fn the_linked_instagram_account_is_found_through_the_pages() {
    let fake = FakeInstagram::start();
    let linked = instagram::linked_accounts(&client(), &fake.endpoints(), TOKEN).unwrap();
    // Of two Pages, only the one with an Instagram professional account counts.
    assert_eq!(
        linked,
        vec![instagram::LinkedAccount {
            ig_user_id: USER.into(),
            username: Some("tidepools".into()),
            page: "Tide Pools".into(),
        }]
    );
    let e = instagram::linked_accounts(&client(), &fake.endpoints(), "wrong").unwrap_err();
    assert!(!e.to_string().contains("wrong"), "{e}");
}
