//! Unit tests of the drop-folder inbox.

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Writes a file whose mtime is 5 s in the past, so the first scan takes it.
fn drop_old(dir: &Path, name: &str, content: &[u8]) -> io::Result<PathBuf> {
    let path = dir.join(name);
    fs::write(&path, content)?;
    let old = SystemTime::now() - Duration::from_secs(5);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)?
        .set_modified(old)?;
    Ok(path)
}

fn accept_all(path: &Path) -> Result<(), String> {
    fs::read(path).map(|_| ()).map_err(|e| e.to_string())
}

/// Every regular file under `dir` (recursively) with its content.
fn all_files(dir: &Path) -> io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        if ft.is_dir() {
            out.extend(all_files(&entry.path())?);
        } else {
            out.push((entry.path(), fs::read(entry.path())?));
        }
    }
    out.sort();
    Ok(out)
}

#[test]
fn open_creates_folders_and_empty_scan_is_empty() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("inbox");
    let mut inbox = Inbox::open(&dir)?;
    assert!(dir.join("done").is_dir());
    assert!(dir.join("rejected").is_dir());
    assert_eq!(inbox.dir(), dir);
    assert_eq!(inbox.watch_mode(), "off");
    let out = inbox.scan(&mut |_| panic!("nothing to accept"))?;
    assert!(out.is_empty());
    Ok(())
}

#[test]
fn valid_file_is_accepted_and_moved_intact() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut inbox = Inbox::open(tmp.path())?;
    let content = b"title: hello\nscenes:\n  - say: hi\n";
    let from = drop_old(tmp.path(), "clip.yaml", content)?;

    let mut seen = Vec::new();
    let out = inbox.scan(&mut |p| {
        seen.push((p.to_path_buf(), fs::read(p).map_err(|e| e.to_string())?));
        Ok(())
    })?;

    let moved_to = tmp.path().join("done").join("clip.yaml");
    assert_eq!(
        out,
        vec![Outcome::Accepted {
            from: from.clone(),
            moved_to: moved_to.clone()
        }]
    );
    assert_eq!(seen, vec![(from.clone(), content.to_vec())]);
    assert!(!from.exists());
    assert_eq!(fs::read(&moved_to)?, content);
    // Nothing left to do.
    assert!(inbox.scan(&mut |_| panic!("already taken"))?.is_empty());
    Ok(())
}

#[test]
fn rejected_file_gets_error_note() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut inbox = Inbox::open(tmp.path())?;
    let from = drop_old(tmp.path(), "bad.json", b"{ not json")?;
    let msg = "line 1: expected a string key. Quote the key and drop the file in again.";

    let out = inbox.scan(&mut |_| Err(msg.to_string()))?;

    let moved_to = tmp.path().join("rejected").join("bad.json");
    let error_file = tmp.path().join("rejected").join("bad.json.error.txt");
    assert_eq!(
        out,
        vec![Outcome::Rejected {
            from: from.clone(),
            moved_to: moved_to.clone(),
            error_file: error_file.clone(),
            message: msg.to_string(),
        }]
    );
    assert!(!from.exists());
    assert_eq!(fs::read(&moved_to)?, b"{ not json");
    let note = fs::read_to_string(&error_file)?;
    assert!(note.contains(msg), "{note}");
    assert!(note.contains("bad.json"), "{note}");
    Ok(())
}

#[test]
fn unsupported_and_empty_files_are_rejected_without_accept() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut inbox = Inbox::open(tmp.path())?;
    drop_old(tmp.path(), "photo.PNG", b"\x89PNG")?;
    drop_old(tmp.path(), "README", b"hello")?;
    drop_old(tmp.path(), "empty.yaml", b"")?;
    drop_old(tmp.path(), "UPPER.YML", b"title: x")?;

    let mut called = Vec::new();
    let out = inbox.scan(&mut |p| {
        called.push(p.to_path_buf());
        Ok(())
    })?;

    assert_eq!(called, vec![tmp.path().join("UPPER.YML")]);
    assert_eq!(out.len(), 4);
    for o in &out {
        match o {
            Outcome::Rejected {
                from,
                message,
                error_file,
                ..
            } => {
                let name = from.file_name().map(|n| n.to_string_lossy().into_owned());
                match name.as_deref() {
                    Some("photo.PNG") => assert!(message.contains(".png"), "{message}"),
                    Some("README") => assert!(message.contains("extension"), "{message}"),
                    Some("empty.yaml") => assert!(message.contains("empty"), "{message}"),
                    other => panic!("unexpected rejection of {other:?}"),
                }
                assert!(error_file.exists());
            }
            Outcome::Accepted { from, .. } => {
                assert_eq!(from, &tmp.path().join("UPPER.YML"))
            }
            Outcome::Stuck { .. } => panic!("stuck: {o:?}"),
        }
    }
    Ok(())
}

#[test]
fn name_collisions_get_numbered_and_nothing_is_overwritten() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let done = tmp.path().join("done");
    let rejected = tmp.path().join("rejected");
    let mut inbox = Inbox::open(tmp.path())?;
    fs::write(done.join("a.yaml"), b"old 0")?;
    fs::write(done.join("a.1.yaml"), b"old 1")?;
    fs::write(rejected.join("b.md"), b"old b")?;
    // Only the note's name is taken: b.1.md must be skipped too.
    fs::write(rejected.join("b.1.md.error.txt"), b"old note")?;

    let mut accepted_to = Vec::new();
    for round in 0..3 {
        let content = format!("new {round}");
        drop_old(tmp.path(), "a.yaml", content.as_bytes())?;
        drop_old(tmp.path(), "b.md", content.as_bytes())?;
        let out = inbox.scan(&mut |p| {
            if p.extension() == Some(OsStr::new("md")) {
                Err(format!("bad round {round}"))
            } else {
                Ok(())
            }
        })?;
        assert_eq!(out.len(), 2, "{out:?}");
        for o in out {
            match o {
                Outcome::Accepted { moved_to, .. } => {
                    assert_eq!(fs::read(&moved_to)?, content.as_bytes());
                    accepted_to.push(moved_to);
                }
                Outcome::Rejected {
                    moved_to,
                    error_file,
                    ..
                } => {
                    assert_eq!(fs::read(&moved_to)?, content.as_bytes());
                    assert!(fs::read_to_string(&error_file)?.contains(&format!("round {round}")));
                }
                Outcome::Stuck { .. } => panic!("stuck: {o:?}"),
            }
        }
    }

    assert_eq!(
        accepted_to,
        vec![
            done.join("a.2.yaml"),
            done.join("a.3.yaml"),
            done.join("a.4.yaml")
        ]
    );
    assert_eq!(fs::read(done.join("a.yaml"))?, b"old 0");
    assert_eq!(fs::read(done.join("a.1.yaml"))?, b"old 1");
    assert_eq!(fs::read(rejected.join("b.md"))?, b"old b");
    assert_eq!(fs::read(rejected.join("b.1.md.error.txt"))?, b"old note");
    assert!(!rejected.join("b.1.md").exists());
    for n in 2..=4 {
        assert!(rejected.join(format!("b.{n}.md")).exists());
        assert!(rejected.join(format!("b.{n}.md.error.txt")).exists());
    }
    Ok(())
}

#[test]
fn inbox_can_move_to_the_scheduler_thread() {
    fn is_send<T: Send>() {}
    is_send::<Inbox>();
    is_send::<WatchError>();
}

#[test]
fn numbered_names() {
    assert_eq!(numbered(OsStr::new("a.yaml"), 0), "a.yaml");
    assert_eq!(numbered(OsStr::new("a.yaml"), 2), "a.2.yaml");
    assert_eq!(numbered(OsStr::new("a.b.json"), 1), "a.b.1.json");
    assert_eq!(numbered(OsStr::new("README"), 3), "README.3");
}

#[test]
fn ignored_names_are_left_alone() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut inbox = Inbox::open(tmp.path())?;
    let names = [
        ".hidden.yaml",
        "notes.yaml~",
        ".notes.yaml.swp",
        "notes.yaml.swp",
        "clip.yaml.part",
        "clip.yaml.tmp",
        "clip.yaml.crdownload",
        "clip.yaml.filepart",
        "#clip.yaml#",
        "old.yaml.error.txt",
    ];
    for n in names {
        drop_old(tmp.path(), n, b"title: x")?;
    }
    fs::create_dir(tmp.path().join("folder.yaml"))?;
    drop_old(&tmp.path().join("folder.yaml"), "inner.yaml", b"title: y")?;
    let before = all_files(tmp.path())?;

    for _ in 0..2 {
        let out = inbox.scan(&mut |p| panic!("must not be offered: {}", p.display()))?;
        assert!(out.is_empty(), "{out:?}");
    }
    assert_eq!(all_files(tmp.path())?, before);
    for n in names {
        assert!(tmp.path().join(n).exists(), "{n}");
    }
    Ok(())
}

#[test]
fn ignore_rules() {
    for n in ["a.yaml", "a.YAML", "a.txt", "x~y.md", "#a.yaml"] {
        assert!(!is_ignored(OsStr::new(n)), "{n}");
    }
    for n in [
        ".a.yaml",
        "a~",
        "a.SWP",
        "a.Part",
        "a.tmp",
        "a.crdownload",
        "#a#",
    ] {
        assert!(is_ignored(OsStr::new(n)), "{n}");
    }
}

#[test]
fn fresh_file_waits_for_two_unchanged_sightings() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut inbox = Inbox::open(tmp.path())?;
    fs::write(tmp.path().join("new.txt"), b"say hello")?;

    assert!(inbox.scan(&mut |_| panic!("too early"))?.is_empty());
    thread::sleep(Duration::from_millis(100));
    assert!(inbox.scan(&mut |_| panic!("still too early"))?.is_empty());
    thread::sleep(Duration::from_millis(250));
    let out = inbox.scan(&mut accept_all)?;
    assert!(
        matches!(out.as_slice(), [Outcome::Accepted { .. }]),
        "{out:?}"
    );
    Ok(())
}

#[test]
fn growing_file_is_taken_only_when_complete() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut inbox = Inbox::open(tmp.path())?;
    let path = tmp.path().join("long.md");
    let chunks: Vec<Vec<u8>> = (0..7)
        .map(|i| format!("## part {i}\n{}\n", "lorem ipsum ".repeat(50)).into_bytes())
        .collect();
    let expected: Vec<u8> = chunks.concat();
    let finished = Arc::new(AtomicBool::new(false));

    let writer = {
        let path = path.clone();
        let finished = Arc::clone(&finished);
        thread::spawn(move || -> io::Result<()> {
            let mut f = fs::File::create(&path)?;
            for (i, chunk) in chunks.iter().enumerate() {
                if i > 0 {
                    thread::sleep(Duration::from_millis(100));
                }
                f.write_all(chunk)?;
                f.flush()?;
            }
            finished.store(true, Ordering::SeqCst);
            Ok(())
        })
    };

    let start = Instant::now();
    let mut taken: Option<Vec<u8>> = None;
    let mut early = false;
    while taken.is_none() && start.elapsed() < Duration::from_secs(5) {
        let out = inbox.scan(&mut |p| {
            if !finished.load(Ordering::SeqCst) {
                early = true;
            }
            taken = Some(fs::read(p).map_err(|e| e.to_string())?);
            Ok(())
        })?;
        if !out.is_empty() {
            assert!(
                matches!(out.as_slice(), [Outcome::Accepted { .. }]),
                "{out:?}"
            );
        }
        thread::sleep(Duration::from_millis(30));
    }
    writer.join().map_err(|_| "writer panicked")??;

    assert!(!early, "file was taken while still being written");
    let taken = taken.ok_or("file never taken")?;
    assert_eq!(taken.len(), expected.len());
    assert_eq!(taken, expected);
    assert_eq!(fs::read(tmp.path().join("done").join("long.md"))?, expected);
    Ok(())
}

#[test]
fn vanished_file_is_forgotten() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut inbox = Inbox::open(tmp.path())?;
    let p = tmp.path().join("gone.yaml");
    fs::write(&p, b"title: x")?;
    assert!(inbox.scan(&mut accept_all)?.is_empty());
    assert_eq!(inbox.seen.len(), 1);
    fs::remove_file(&p)?;
    assert!(inbox.scan(&mut accept_all)?.is_empty());
    assert!(inbox.seen.is_empty());
    Ok(())
}

#[test]
fn failed_move_is_reported_once_and_retried_without_reaccepting() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("inbox");
    let mut inbox = Inbox::open(&dir)?;
    // Make done/ unusable: a file where the folder should be. (That file is itself a fresh
    // inbox entry, so the scans below only sight it; it is moved away before it settles.)
    fs::remove_dir(dir.join("done"))?;
    fs::write(dir.join("done"), b"in the way")?;
    drop_old(&dir, "ok.yaml", b"title: x")?;

    let mut calls = 0;
    let out = inbox.scan(&mut |_| {
        calls += 1;
        Ok(())
    })?;
    assert!(
        matches!(out.as_slice(), [Outcome::Stuck { accepted: true, .. }]),
        "{out:?}"
    );
    assert!(dir.join("ok.yaml").exists());
    // Still stuck: not reported again, not re-accepted.
    let out = inbox.scan(&mut |_| {
        calls += 1;
        Ok(())
    })?;
    assert!(out.is_empty(), "{out:?}");

    fs::rename(dir.join("done"), tmp.path().join("blocker"))?;
    fs::create_dir(dir.join("done"))?;
    let out = inbox.scan(&mut |_| {
        calls += 1;
        Ok(())
    })?;
    assert_eq!(
        out,
        vec![Outcome::Accepted {
            from: dir.join("ok.yaml"),
            moved_to: dir.join("done").join("ok.yaml")
        }]
    );
    assert_eq!(calls, 1);
    Ok(())
}

#[test]
fn scan_never_deletes_anything() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut inbox = Inbox::open(tmp.path())?;
    fs::write(tmp.path().join("done").join("x.yaml"), b"earlier x")?;
    fs::write(tmp.path().join("rejected").join("y.json"), b"earlier y")?;
    drop_old(tmp.path(), "x.yaml", b"title: x")?;
    drop_old(tmp.path(), "y.json", b"{}")?;
    drop_old(tmp.path(), "z.txt", b"plain words")?;
    drop_old(tmp.path(), "image.png", b"png")?;
    drop_old(tmp.path(), "empty.md", b"")?;
    drop_old(tmp.path(), ".dot.yaml", b"hidden")?;
    drop_old(tmp.path(), "w.yaml.part", b"partial")?;
    fs::write(tmp.path().join("fresh.yaml"), b"just now")?;

    let before = all_files(tmp.path())?;
    let out = inbox.scan(&mut |p| {
        if p.extension() == Some(OsStr::new("json")) {
            Err("json rejected in this test".into())
        } else {
            Ok(())
        }
    })?;
    let after = all_files(tmp.path())?;

    let notes = out
        .iter()
        .filter(|o| matches!(o, Outcome::Rejected { .. }))
        .count();
    assert_eq!(notes, 3, "{out:?}");
    assert_eq!(out.len(), 5, "{out:?}");
    assert_eq!(after.len(), before.len() + notes);
    // Every original content is still somewhere.
    let mut before_contents: Vec<&Vec<u8>> = before.iter().map(|(_, c)| c).collect();
    let mut after_contents: Vec<&Vec<u8>> = after
        .iter()
        .filter(|(p, _)| !p.to_string_lossy().ends_with(".error.txt"))
        .map(|(_, c)| c)
        .collect();
    before_contents.sort();
    after_contents.sort();
    assert_eq!(before_contents, after_contents);
    Ok(())
}

fn watch_end_to_end(polling: bool) -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut inbox = Inbox::open(tmp.path())?;
    let rx = if polling {
        inbox.watch_polling()?
    } else {
        inbox.watch()?
    };
    if polling {
        assert_eq!(inbox.watch_mode(), "poll");
        assert_eq!(inbox.fallback_reason(), None);
    } else if inbox.watch_mode() == "poll" {
        // Allowed (e.g. inotify limits on the test machine), but it must say why.
        assert!(inbox.fallback_reason().is_some());
    } else {
        assert_eq!(inbox.watch_mode(), NATIVE_MODE);
    }
    // Settle: drain anything the setup produced.
    thread::sleep(Duration::from_millis(100));
    while rx.try_recv().is_ok() {}

    let written = Instant::now();
    fs::write(tmp.path().join("dropped.yaml"), b"title: dropped")?;
    let deadline = written + Duration::from_secs(2);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left)
            .map_err(|e| format!("no notification within 2 s of the drop: {e}"))?;
        let out = inbox.scan(&mut accept_all)?;
        if let [Outcome::Accepted { moved_to, .. }] = out.as_slice() {
            assert_eq!(fs::read(moved_to)?, b"title: dropped");
            assert!(written.elapsed() <= Duration::from_secs(2));
            return Ok(());
        }
        assert!(out.is_empty(), "{out:?}");
    }
}

#[test]
fn watch_notifies_within_two_seconds() -> TestResult {
    watch_end_to_end(false)
}

#[test]
fn polling_watch_notifies_within_two_seconds() -> TestResult {
    watch_end_to_end(true)
}

#[test]
fn dropping_the_inbox_ends_the_receiver() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut inbox = Inbox::open(tmp.path())?;
    let rx = inbox.watch()?;
    drop(inbox);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(()) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
            Err(RecvTimeoutError::Timeout) => return Err("receiver never disconnected".into()),
        }
    }
}
