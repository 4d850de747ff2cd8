//! Creator info, the checks before a post, and the post's status.

use super::*;

/// What `creator_info/query` says about the creator right now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatorInfo {
    pub creator_username: String,
    pub creator_nickname: String,
    pub creator_avatar_url: String,
    pub privacy_level_options: Vec<String>,
    pub comment_disabled: bool,
    pub duet_disabled: bool,
    pub stitch_disabled: bool,
    pub max_video_post_duration_sec: u64,
}

/// The creator's current posting options (`POST /v2/post/publish/creator_info/query/`).
pub fn creator_info(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
) -> Result<CreatorInfo, TikTokError> {
    let data = call(
        client,
        endpoints,
        token,
        "/v2/post/publish/creator_info/query/",
        json!({}),
    )?;
    let s = |k: &str| data[k].as_str().unwrap_or_default().to_string();
    let b = |k: &str| data[k].as_bool().unwrap_or(false);
    Ok(CreatorInfo {
        creator_username: s("creator_username"),
        creator_nickname: s("creator_nickname"),
        creator_avatar_url: s("creator_avatar_url"),
        privacy_level_options: data["privacy_level_options"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        comment_disabled: b("comment_disabled"),
        duet_disabled: b("duet_disabled"),
        stitch_disabled: b("stitch_disabled"),
        max_video_post_duration_sec: data["max_video_post_duration_sec"].as_u64().unwrap_or(0),
    })
}

/// Whether a direct post fits what the creator may do now: the privacy level among the offered
/// ones, branded content not private, the video not longer than the creator's limit.
pub fn check_post(meta: &PostMeta, creator: &CreatorInfo) -> Result<(), TikTokError> {
    if !creator.privacy_level_options.contains(&meta.privacy_level) {
        let offered = creator.privacy_level_options.join(", ");
        let unaudited = creator.privacy_level_options == ["SELF_ONLY"];
        return Err(TikTokError::Rejected {
            code: "privacy_level_option_mismatch".into(),
            message: format!(
                "privacy level {:?} is not offered to @{}; offered now: {}",
                meta.privacy_level,
                creator.creator_username,
                if offered.is_empty() { "none" } else { &offered }
            ),
            hint: if unaudited {
                "choose SELF_ONLY: an unaudited TikTok API client may only post privately until TikTok audits it".into()
            } else {
                format!("choose one of: {offered}")
            },
        });
    }
    if meta.brand_content_toggle && meta.privacy_level == "SELF_ONLY" {
        return Err(TikTokError::Rejected {
            code: "branded_content_private".into(),
            message: "branded content (paid partnership) cannot be posted with SELF_ONLY".into(),
            hint: "choose a public or followers privacy level, or turn the paid partnership off"
                .into(),
        });
    }
    if let Some(d) = meta.duration_s {
        let max = creator.max_video_post_duration_sec;
        if max > 0 && d > max as f64 {
            return Err(TikTokError::Rejected {
                code: "duration_too_long".into(),
                message: format!(
                    "the video lasts {d:.1} s; @{} may post at most {max} s",
                    creator.creator_username
                ),
                hint: "shorten the video, or send it to the inbox instead".into(),
            });
        }
    }
    Ok(())
}

/// Where a post stands (`status/fetch`'s `status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PublishStatus {
    /// TikTok is receiving or processing an uploaded file.
    ProcessingUpload,
    /// TikTok is fetching a `PULL_FROM_URL` video.
    ProcessingDownload,
    /// In the creator's inbox, waiting for them to post it (final for an inbox upload).
    SendToUserInbox,
    /// Posted (final for a direct post; a public one may still be in moderation).
    PublishComplete,
    /// Failed: see [`PostStatus::fail_reason`].
    Failed,
    /// A status this client does not know.
    Other(String),
}

impl PublishStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "PROCESSING_UPLOAD" => Self::ProcessingUpload,
            "PROCESSING_DOWNLOAD" => Self::ProcessingDownload,
            "SEND_TO_USER_INBOX" => Self::SendToUserInbox,
            "PUBLISH_COMPLETE" => Self::PublishComplete,
            "FAILED" => Self::Failed,
            other => Self::Other(other.to_string()),
        }
    }

    /// No further change is coming.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::SendToUserInbox | Self::PublishComplete | Self::Failed
        )
    }
}

/// A post's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostStatus {
    pub status: PublishStatus,
    /// Why it failed, in TikTok's words (`file_format_check_failed`, …).
    pub fail_reason: Option<String>,
    /// The public post's id(s), once moderation is done (`publicaly_available_post_id`).
    pub post_ids: Vec<String>,
    /// How much of an uploaded file TikTok has.
    pub uploaded_bytes: Option<u64>,
}

impl PostStatus {
    /// What to do about a failure, when TikTok's reason is one this client knows.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self.fail_reason.as_deref()? {
            "file_format_check_failed" => {
                "TikTok cannot read the file: render MP4 (H.264) or WebM and publish again"
            }
            "duration_check_failed" => {
                "the video is too long or too short for this creator: check creator_info's limit"
            }
            "frame_rate_check_failed" => "TikTok takes 23 to 60 fps: render at 30 fps",
            "picture_size_check_failed" => {
                "TikTok takes 360 to 4096 pixels a side: render at 1080x1920"
            }
            "internal" => "TikTok failed internally: publish again later",
            "publish_cancelled" => "the creator cancelled the post",
            "auth_removed" => "the creator removed reelsmith's access: reconnect the account",
            "spam_risk_too_many_posts" => "the creator's daily cap is reached: publish tomorrow",
            "spam_risk_user_banned_from_posting" => "the account is banned from posting",
            "spam_risk_text" | "spam_risk" => {
                "TikTok took the caption or post for spam: change the caption"
            }
            _ => return None,
        })
    }
}

/// A post's status (`POST /v2/post/publish/status/fetch/`).
pub fn status(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
    publish_id: &str,
) -> Result<PostStatus, TikTokError> {
    let data = call(
        client,
        endpoints,
        token,
        "/v2/post/publish/status/fetch/",
        json!({ "publish_id": publish_id }),
    )?;
    Ok(PostStatus {
        status: PublishStatus::parse(data["status"].as_str().unwrap_or_default()),
        fail_reason: data["fail_reason"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(String::from),
        post_ids: data["publicaly_available_post_id"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| {
                        v.as_str()
                            .map(String::from)
                            .or_else(|| v.as_u64().map(|n| n.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        uploaded_bytes: data["uploaded_bytes"].as_u64(),
    })
}
