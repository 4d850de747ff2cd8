//! The publishing limit, a container's status, and publishing it.

use super::*;

/// An Instagram professional account reachable with a token: the Facebook Page it is linked
/// to, and its Instagram user id (what the Graph API posts as).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkedAccount {
    pub ig_user_id: String,
    pub username: Option<String>,
    pub page: String,
}

/// The Instagram professional accounts linked to the Pages the token (Facebook Login for
/// Business) manages: `GET /{version}/me/accounts?fields=name,instagram_business_account{id,username}`.
pub fn linked_accounts(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
) -> Result<Vec<LinkedAccount>, InstagramError> {
    let url = format!(
        "{}/{GRAPH_VERSION}/me/accounts?fields=name,instagram_business_account%7Bid,username%7D",
        endpoints.instagram_api
    );
    let j = graph(client, "GET", &url, token, None, true)?;
    Ok(j["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let ig = &p["instagram_business_account"];
            Some(LinkedAccount {
                ig_user_id: ig["id"].as_str()?.to_string(),
                username: ig["username"].as_str().map(str::to_string),
                page: p["name"].as_str().unwrap_or_default().to_string(),
            })
        })
        .collect())
}

/// `GET /{version}/{ig-user-id}/content_publishing_limit?fields=quota_usage,config`.
pub fn publishing_limit(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
    ig_user_id: &str,
) -> Result<PublishingLimit, InstagramError> {
    let url = format!(
        "{}/{GRAPH_VERSION}/{ig_user_id}/content_publishing_limit?fields=quota_usage,config",
        endpoints.instagram_api
    );
    let j = graph(client, "GET", &url, token, None, true)?;
    let d = &j["data"][0];
    let n = |v: &Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    Ok(PublishingLimit {
        used: n(&d["quota_usage"]).unwrap_or(0),
        // The documented limit when the answer leaves it out.
        limit: n(&d["config"]["quota_total"]).unwrap_or(100),
        window_s: n(&d["config"]["quota_duration"]).unwrap_or(86400),
    })
}

/// A container's `status_code`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerStatus {
    InProgress,
    Finished,
    Error,
    Expired,
    Published,
    Other(String),
}

impl ContainerStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "IN_PROGRESS" => Self::InProgress,
            "FINISHED" => Self::Finished,
            "ERROR" => Self::Error,
            "EXPIRED" => Self::Expired,
            "PUBLISHED" => Self::Published,
            other => Self::Other(other.into()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Finished => "FINISHED",
            Self::Error => "ERROR",
            Self::Expired => "EXPIRED",
            Self::Published => "PUBLISHED",
            Self::Other(s) => s,
        }
    }
}

/// A container's state: its `status_code` and Meta's `status` text (the reason of an `ERROR`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    pub status_code: ContainerStatus,
    pub status: Option<String>,
}

impl ContainerState {
    fn failure(&self, container_id: &str) -> Option<InstagramError> {
        let hint = match self.status_code {
            ContainerStatus::Error => {
                "check the video against the Reels specifications (MP4/MOV, H.264 or HEVC, 3 s to 15 min, 9:16 recommended) and publish again"
            }
            ContainerStatus::Expired => {
                "the container was not published within 24 hours: publish again (a new container is made)"
            }
            _ => return None,
        };
        Some(InstagramError::ContainerFailed {
            container_id: container_id.into(),
            status_code: self.status_code.as_str().into(),
            status: self
                .status
                .clone()
                .unwrap_or_else(|| self.status_code.as_str().into()),
            hint: hint.into(),
        })
    }
}

/// `GET /{version}/{container-id}?fields=status_code,status`.
pub fn container_status(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
    container_id: &str,
) -> Result<ContainerState, InstagramError> {
    let url = format!(
        "{}/{GRAPH_VERSION}/{container_id}?fields=status_code,status",
        endpoints.instagram_api
    );
    let j = graph(client, "GET", &url, token, None, true)?;
    Ok(ContainerState {
        status_code: ContainerStatus::parse(j["status_code"].as_str().unwrap_or_default()),
        status: j["status"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(String::from),
    })
}

/// Polls a container every `every`, at most `polls` times, until it is `FINISHED` or
/// `PUBLISHED` (returned); `ERROR` and `EXPIRED` are [`InstagramError::ContainerFailed`] with
/// Meta's reason; still in progress after the last poll: [`InstagramError::Processing`].
pub fn wait_for_container(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
    container_id: &str,
    every: Duration,
    polls: u32,
) -> Result<ContainerStatus, InstagramError> {
    for i in 0..polls.max(1) {
        if i > 0 {
            std::thread::sleep(every);
        }
        let st = container_status(client, endpoints, token, container_id)?;
        if let Some(e) = st.failure(container_id) {
            return Err(e);
        }
        if matches!(
            st.status_code,
            ContainerStatus::Finished | ContainerStatus::Published
        ) {
            return Ok(st.status_code);
        }
    }
    Err(InstagramError::Processing {
        container_id: container_id.into(),
    })
}

/// What [`publish`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Published {
    /// Published now (or by an earlier call that saved it): the media id.
    Media(String),
    /// The container had already been published by an earlier attempt whose answer was lost;
    /// Meta gives no way from a container to its media id, so there is none to report.
    Earlier,
}

/// Publishes the container of `state` (`POST /{version}/{ig-user-id}/media_publish`), once it is
/// `FINISHED` and the publishing limit has room; saves and returns the media id. Publishing twice
/// is harmless: a saved media id is returned as is, and a container already `PUBLISHED` is
/// [`Published::Earlier`] without another request.
pub fn publish(
    client: &Client,
    endpoints: &Endpoints,
    token: &str,
    ig_user_id: &str,
    state: &mut UploadState,
    persist: &mut dyn FnMut(&UploadState) -> Result<(), String>,
) -> Result<Published, InstagramError> {
    if let Some(m) = &state.published_media_id {
        return Ok(Published::Media(m.clone()));
    }
    let Some(container_id) = state.container_id.clone() else {
        return Err(InstagramError::Rejected {
            code: 0,
            subcode: None,
            message: "nothing to publish: no container was made".into(),
            hint: "upload the video first".into(),
        });
    };
    let url = format!(
        "{}/{GRAPH_VERSION}/{ig_user_id}/media_publish",
        endpoints.instagram_api
    );
    let mut failures = 0;
    loop {
        let st = container_status(client, endpoints, token, &container_id)?;
        if let Some(e) = st.failure(&container_id) {
            return Err(e);
        }
        match st.status_code {
            ContainerStatus::Published => return Ok(Published::Earlier),
            ContainerStatus::Finished => {}
            _ => {
                return Err(InstagramError::Processing { container_id });
            }
        }
        let limit = publishing_limit(client, endpoints, token, ig_user_id)?;
        if limit.exhausted() {
            return Err(limit.quota_error());
        }
        let form = vec![("creation_id".to_string(), container_id.clone())];
        match graph(client, "POST", &url, token, Some(form), false) {
            Ok(j) => {
                let id = j["id"]
                    .as_str()
                    .map(String::from)
                    .or_else(|| j["id"].as_u64().map(|n| n.to_string()))
                    .unwrap_or_default();
                if id.is_empty() {
                    return Err(InstagramError::Transient(format!(
                        "media_publish answered without an id: {j}"
                    )));
                }
                state.published_media_id = Some(id.clone());
                persist(state).map_err(InstagramError::Persist)?;
                return Ok(Published::Media(id));
            }
            Err(InstagramError::Transient(e)) => {
                // The answer may be lost after Meta published: the next round looks first.
                failures += 1;
                if failures >= MAX_FAILURES {
                    return Err(InstagramError::Transient(e));
                }
                std::thread::sleep(client.backoff(failures - 1));
            }
            Err(e @ (InstagramError::Quota { .. } | InstagramError::Unauthorized { .. })) => {
                return Err(e)
            }
            Err(e) => {
                let again = container_status(client, endpoints, token, &container_id)?;
                if again.status_code == ContainerStatus::Published {
                    return Ok(Published::Earlier);
                }
                return Err(e);
            }
        }
    }
}
