//! The publish pane: what it shows for each state of a publication (snapshot), and retry and
//! cancel going through the real store as the scheduler's runner sees them.

use super::action::{Action, Command, Pane};
use super::state::{AppState, Confirm, Mode, Overlay};
use super::tests::{render, studio_on, NOW};
use super::update::update;
use crate::store::{NewPublication, PublicationRow, PublicationStatus, Store};

fn row(id: i64, platform: &str, status: PublicationStatus) -> PublicationRow {
    PublicationRow {
        id,
        platform: platform.into(),
        account: "main".into(),
        kind: if platform == "youtube" {
            "video"
        } else {
            "short"
        }
        .into(),
        lang: "en".into(),
        source: "/srv/out/tides".into(),
        job_id: Some(7),
        file: "/srv/out/tides/en/final.mp4".into(),
        options: "{}".into(),
        status,
        upload_state: None,
        bytes_done: 0,
        bytes_total: None,
        remote_id: None,
        error: None,
        not_before_ms: None,
        cancel_requested: false,
        owner_pid: None,
        attempts: 0,
        created_ms: NOW,
        started_ms: None,
        beat_ms: None,
        finished_ms: None,
    }
}

#[test]
fn publish_pane_shows_every_state() {
    let mut s = AppState::new(Mode::Owner, vec!["anime".into()], NOW);
    s.size = (120, 20);
    let mut up = row(6, "youtube", PublicationStatus::Uploading);
    (up.bytes_done, up.bytes_total, up.owner_pid, up.attempts) =
        (40 << 20, Some(100 << 20), Some(4242), 2);
    let mut wait = row(5, "youtube", PublicationStatus::Waiting);
    wait.not_before_ms = Some(NOW + 3_723_000);
    wait.error = Some("100 uploads today on main (YouTube's daily limit)".into());
    let mut proc_ = row(4, "tiktok", PublicationStatus::Processing);
    proc_.remote_id = Some("v_pub_77".into());
    let mut live = row(3, "youtube", PublicationStatus::Live);
    live.remote_id = Some("dQw4w9WgXcQ".into());
    let mut failed = row(2, "instagram", PublicationStatus::Failed);
    failed.error = Some("Instagram could not process the Reel (ERROR)".into());
    let queued = row(1, "youtube", PublicationStatus::Queued);
    update(
        &mut s,
        Action::Publications(vec![up, wait, proc_, live, failed, queued]),
    );
    update(&mut s, Action::Cmd(Command::GoPublish));
    assert_eq!(s.pane, Pane::Publish);
    let screen = render(&s);
    for want in [
        "6 Publish",
        "uploading",
        " 40% 100 MiB",
        "waiting",
        "in 1:02:03",
        "v_pub_77",
        "dQw4w9WgXcQ",
        "failed",
        "Instagram could not process",
        "run by pid 4242",
    ] {
        assert!(screen.contains(want), "{want:?} missing:\n{screen}");
    }
    insta::assert_snapshot!(screen);
}

fn publication(file: &str) -> NewPublication {
    NewPublication {
        platform: "youtube".into(),
        account: "main".into(),
        kind: "video".into(),
        lang: "en".into(),
        source: "/out/tides".into(),
        job_id: None,
        file: file.into(),
        options: "{}".into(),
    }
}

#[test]
fn retry_and_cancel_act_on_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = crate::config::Dirs {
        data: tmp.path().join("data"),
        config: tmp.path().join("config"),
    };
    let mut studio = studio_on(&dirs);
    let store = Store::open(&dirs.db_path()).unwrap();
    let ids: Vec<i64> = store
        .enqueue_publications(&[
            publication("/a.mp4"),
            publication("/b.mp4"),
            publication("/c.mp4"),
            publication("/d.mp4"),
        ])
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[3]);
    // a failed; b is uploading in a process that is gone; c in one that lives (this one);
    // d is still queued.
    let me = std::process::id();
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    store.claim_publication(a, me, 60_000).unwrap().unwrap();
    store
        .set_publication_status(
            a,
            me,
            PublicationStatus::Failed,
            None,
            Some("HTTP 400"),
            None,
        )
        .unwrap();
    store.claim_publication(b, dead, 60_000).unwrap().unwrap();
    store.claim_publication(c, me, 60_000).unwrap().unwrap();
    let poll = |studio: &mut super::Studio| {
        for act in studio.data.poll().unwrap() {
            studio.dispatch(act);
        }
    };
    poll(&mut studio);
    studio.dispatch(Action::Cmd(Command::GoPublish));
    assert_eq!(studio.state.publications.len(), 4);
    let select = |studio: &mut super::Studio, id: i64| {
        studio.state.publish_cursor.sel = studio
            .state
            .publications
            .iter()
            .position(|p| p.id == id)
            .unwrap();
    };
    let status = |id| store.publication(id).unwrap().unwrap();

    // Retry only what failed or was cancelled.
    select(&mut studio, d);
    studio.dispatch(Action::Cmd(Command::RetryPublication));
    assert!(format!("{:?}", studio.state.message).contains("only failed or cancelled"));
    select(&mut studio, a);
    studio.dispatch(Action::Cmd(Command::RetryPublication));
    assert_eq!(status(a).status, PublicationStatus::Queued);
    assert_eq!(status(a).error, None);

    // Cancel asks first; `n` leaves it alone.
    select(&mut studio, d);
    studio.dispatch(Action::Cmd(Command::CancelPublication));
    assert!(matches!(
        studio.state.overlay,
        Overlay::Confirm(Confirm::CancelPublication(id, _)) if id == d
    ));
    studio.dispatch(Action::Answer('n'));
    assert_eq!(status(d).status, PublicationStatus::Queued);
    studio.dispatch(Action::Cmd(Command::CancelPublication));
    studio.dispatch(Action::Answer('y'));
    assert_eq!(status(d).status, PublicationStatus::Cancelled);

    // A dead runner's upload is cancelled at once; a live runner's is asked to stop.
    poll(&mut studio);
    select(&mut studio, b);
    studio.dispatch(Action::Cmd(Command::CancelPublication));
    studio.dispatch(Action::Answer('y'));
    assert_eq!(status(b).status, PublicationStatus::Cancelled);
    poll(&mut studio);
    select(&mut studio, c);
    studio.dispatch(Action::Cmd(Command::CancelPublication));
    studio.dispatch(Action::Answer('y'));
    let rc = status(c);
    assert_eq!(
        (rc.status, rc.cancel_requested),
        (PublicationStatus::Uploading, true)
    );
    assert!(format!("{:?}", studio.state.message).contains("next chunk or poll"));

    // The runner going live is reported on the status line.
    store
        .set_publication_status(c, me, PublicationStatus::Live, Some("vid9"), None, None)
        .unwrap();
    poll(&mut studio);
    let msg = format!("{:?}", studio.state.message);
    assert!(msg.contains("is live as vid9"), "{msg}");
    // Finished ones cannot be cancelled.
    select(&mut studio, c);
    studio.dispatch(Action::Cmd(Command::CancelPublication));
    assert_eq!(studio.state.overlay, Overlay::None);
}
