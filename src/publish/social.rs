//! The runner's TikTok and Instagram Reels halves: the vertical short of a render, posted with
//! the platforms' disclosure options (TikTok `is_aigc`, Instagram `is_ai_generated`) and their
//! privacy rules, resumable from the saved upload state like YouTube's, followed until posted.

use std::path::Path;
use std::time::Duration;

use reelsmith_publish::instagram::{self, ContainerStatus, InstagramError, Published, ReelMeta};
use reelsmith_publish::tiktok::{self, PostMeta, PublishStatus, TikTokError};
use reelsmith_publish::Platform;

use super::accounts;
use super::runner::{Control, Outcome, PublishOptions, Runner};
use crate::store::Beat;
use crate::store::PublicationRow;

fn now_ms() -> i64 {
    reelsmith_publish::oauth::now_ms()
}

/// A post's caption: the language's title, then its description.
fn caption(row: &PublicationRow) -> Result<(String, String), String> {
    let m =
        super::runner::read_json(&Path::new(&row.source).join(&row.lang).join("metadata.json"))?;
    let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
    Ok((s("title"), s("description")))
}

/// TikTok's privacy level for the studio's: public → everyone, unlisted → mutual friends,
/// private → only the creator.
pub fn tiktok_privacy(privacy: &str) -> &'static str {
    match privacy {
        "public" => "PUBLIC_TO_EVERYONE",
        "unlisted" => "MUTUAL_FOLLOW_FRIENDS",
        _ => "SELF_ONLY",
    }
}

fn persist_into<'a, S: serde::Serialize>(
    runner: &'a Runner<'a>,
    id: i64,
    control: &'a Control,
    offset: impl Fn(&S) -> (u64, u64) + 'a,
) -> impl FnMut(&S) -> Result<(), String> + 'a {
    move |s: &S| {
        let (done, total) = offset(s);
        control.saw(runner.save_state(id, s, done, total)?);
        Ok(())
    }
}

/// A hold of `d` (at least five seconds: a platform's "retry after 0" must not spin).
fn wait(d: Duration, why: String) -> Outcome {
    Outcome::Waiting(
        now_ms() + d.max(Duration::from_secs(5)).as_millis() as i64,
        why,
    )
}

impl Runner<'_> {
    pub(super) fn tiktok(&self, row: &PublicationRow) -> Outcome {
        let opts: PublishOptions = serde_json::from_str(&row.options).unwrap_or_default();
        let mut account = match accounts::load(self.data, Platform::TikTok, &row.account) {
            Ok(a) => a,
            Err(e) => return Outcome::Failed(e),
        };
        let token =
            match accounts::fresh_token(self.data, &self.client, &self.endpoints, &mut account) {
                Ok(t) => t,
                Err(e) => return self.token_outcome(e),
            };
        let (title, _) = match caption(row) {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(e),
        };
        let mut meta = PostMeta::new(title, tiktok_privacy(&opts.privacy));
        meta.is_aigc = opts.synthetic;
        if opts.tiktok_inbox {
            // The creator adds caption, privacy and labels in the app.
            meta.mode = tiktok::PostMode::Inbox;
        }
        let mut state: tiktok::UploadState = row
            .upload_state
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let control = Control::default();
        let mut persist = persist_into(self, row.id, &control, |s: &tiktok::UploadState| {
            (
                s.next_chunk.saturating_mul(s.chunk_size).min(s.total),
                s.total,
            )
        });
        let mut progress = |_: u64, _: u64| control.go();
        let fail = |e: TikTokError| match e {
            TikTokError::Cancelled => control.stopped(),
            TikTokError::Transient(m) => wait(Duration::from_secs(300), m),
            e => match e.retry_after() {
                Some(d) => wait(d, e.to_string()),
                None => Outcome::Failed(e.to_string()),
            },
        };
        // A direct post's init asks creator_info first and checks the post against it
        // (privacy levels offered, duration, interactions); a resumed upload skips both.
        let publish_id = match tiktok::upload(
            &self.client,
            &self.endpoints,
            &token,
            &meta,
            Path::new(&row.file),
            &mut state,
            &mut persist,
            &mut progress,
        ) {
            Ok(id) => id,
            Err(e) => return fail(e),
        };
        if control.lost() || !self.mark_processing(row, &publish_id) {
            return Outcome::Lost;
        }
        let sent = if opts.tiktok_inbox {
            format!(
                "the video is already in the creator's TikTok inbox (publish id {publish_id}); \
                 delete it there if it should not be posted"
            )
        } else {
            format!(
                "the video was already sent to TikTok (publish id {publish_id}); remove the post \
                 in the TikTok app if it should not stay"
            )
        };
        // A cancel seen as the last chunk was acknowledged comes too late to stop the post.
        if control.cancelled() {
            return Outcome::Cancelled(Some(sent));
        }
        for _ in 0..self.follow_polls() {
            match tiktok::status(&self.client, &self.endpoints, &token, &publish_id) {
                Ok(s) => match s.status {
                    PublishStatus::PublishComplete | PublishStatus::SendToUserInbox => {
                        return Outcome::Live(s.post_ids.first().cloned().unwrap_or(publish_id))
                    }
                    PublishStatus::Failed => {
                        return Outcome::Failed(format!(
                            "TikTok could not post it: {}{}",
                            s.fail_reason.clone().unwrap_or_default(),
                            s.hint().map(|h| format!(" — {h}")).unwrap_or_default()
                        ))
                    }
                    _ => {}
                },
                Err(TikTokError::Transient(_)) => {}
                Err(e) => return fail(e),
            }
            match self.beat(row.id) {
                Beat::Go => {}
                Beat::Cancel => return Outcome::Cancelled(Some(sent)),
                Beat::Lost => return Outcome::Lost,
            }
            std::thread::sleep(self.poll);
        }
        self.follow_later(&format!("TikTok post {publish_id}"))
    }

    pub(super) fn instagram(&self, row: &PublicationRow) -> Outcome {
        let opts: PublishOptions = serde_json::from_str(&row.options).unwrap_or_default();
        let mut account = match accounts::load(self.data, Platform::Instagram, &row.account) {
            Ok(a) => a,
            Err(e) => return Outcome::Failed(e),
        };
        let Some(user) = account.user_id.clone() else {
            return Outcome::Failed(format!(
                "the instagram account {} has no Instagram user id: `reelsmith accounts add \
                 instagram --ig-user-id ID` (Meta Business Suite › Settings › Instagram account)",
                row.account
            ));
        };
        let token =
            match accounts::fresh_token(self.data, &self.client, &self.endpoints, &mut account) {
                Ok(t) => t,
                Err(e) => return self.token_outcome(e),
            };
        let (title, description) = match caption(row) {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(e),
        };
        let mut meta = ReelMeta::new(format!("{title}\n\n{description}").trim().to_string());
        meta.is_ai_generated = opts.synthetic;
        let mut state: instagram::UploadState = row
            .upload_state
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let control = Control::default();
        let mut persist = persist_into(self, row.id, &control, |s: &instagram::UploadState| {
            (s.offset, s.total)
        });
        let mut progress = |_: u64, _: u64| control.go();
        let fail = |e: InstagramError| match e {
            InstagramError::Cancelled => control.stopped(),
            InstagramError::Transient(m) => wait(Duration::from_secs(300), m),
            e => match e.retry_after() {
                Some(d) => wait(d, e.to_string()),
                None => Outcome::Failed(e.to_string()),
            },
        };
        let container = match instagram::upload(
            &self.client,
            &self.endpoints,
            &token,
            &user,
            &meta,
            Path::new(&row.file),
            &mut state,
            &mut persist,
            &mut progress,
        ) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        // Nothing is on Instagram until the container is published: a cancel still stops it.
        if !control.go() {
            return control.stopped();
        }
        if !self.mark_processing(row, &container) {
            return Outcome::Lost;
        }
        let mut finished = false;
        for _ in 0..self.follow_polls() {
            match instagram::wait_for_container(
                &self.client,
                &self.endpoints,
                &token,
                &container,
                self.poll,
                1,
            ) {
                Ok(ContainerStatus::Finished) | Ok(ContainerStatus::Published) => {
                    finished = true;
                    break;
                }
                Ok(ContainerStatus::InProgress)
                | Err(InstagramError::Transient(_))
                | Err(InstagramError::Processing { .. }) => {
                    // Not yet published: a cancel here leaves nothing on Instagram (an
                    // unpublished container expires by itself).
                    match self.beat(row.id) {
                        Beat::Go => {}
                        Beat::Cancel => return Outcome::Cancelled(None),
                        Beat::Lost => return Outcome::Lost,
                    }
                    std::thread::sleep(self.poll)
                }
                Ok(other) => {
                    return Outcome::Failed(format!(
                        "Instagram could not process the Reel (container {container}: {other:?})"
                    ))
                }
                Err(e) => return fail(e),
            }
        }
        if !finished {
            return self.follow_later(&format!("Instagram container {container}"));
        }
        // The last word before the Reel goes public.
        match self.beat(row.id) {
            Beat::Go => {}
            Beat::Cancel => return Outcome::Cancelled(None),
            Beat::Lost => return Outcome::Lost,
        }
        match instagram::publish(
            &self.client,
            &self.endpoints,
            &token,
            &user,
            &mut state,
            &mut persist,
        ) {
            Ok(Published::Media(id)) => Outcome::Live(id),
            Ok(_) => Outcome::Live(container),
            Err(e) => fail(e),
        }
    }
}
