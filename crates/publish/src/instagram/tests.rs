use super::*;
use serde_json::json;

fn resp(status: u16, j: &Value, headers: &[(&str, &str)]) -> Response {
    Response {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: j.to_string().into_bytes(),
    }
}

#[test]
fn graph_errors_are_told_apart() {
    let err = |code: i64, sub: Option<i64>, headers: &[(&str, &str)]| {
        let j = json!({"error": {"message": "m", "type": "OAuthException", "code": code,
            "error_subcode": sub, "fbtrace_id": "T"}});
        graph_error(&resp(400, &j, headers), &j)
    };
    assert!(matches!(
        err(190, None, &[]),
        InstagramError::Unauthorized { .. }
    ));
    assert_eq!(
        err(9, Some(2207042), &[]).retry_after(),
        Some(LIMIT_RECHECK)
    );
    let buc =
        r#"{"1784":[{"type":"instagram","call_count":100,"estimated_time_to_regain_access":7}]}"#;
    assert_eq!(
        err(4, None, &[("x-business-use-case-usage", buc)]).retry_after(),
        Some(Duration::from_secs(420))
    );
    assert_eq!(err(17, None, &[]).retry_after(), Some(LIMIT_RECHECK));
    match err(36000, Some(2207026), &[]) {
        InstagramError::Rejected { hint, message, .. } => {
            assert!(hint.contains("format") && message.contains("fbtrace_id T"))
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(
        err(4, Some(2207051), &[]),
        InstagramError::Rejected { .. }
    ));
}

#[test]
fn reel_params() {
    let mut m = ReelMeta::new("hello #a");
    m.thumb_offset_ms = Some(1500);
    let p = m.params();
    let get = |k: &str| p.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
    assert_eq!(get("media_type"), Some("REELS"));
    assert_eq!(get("upload_type"), Some("resumable"));
    assert_eq!(get("video_url"), None);
    assert_eq!(get("is_ai_generated"), Some("true"));
    assert_eq!(get("thumb_offset"), Some("1500"));
    assert_eq!(get("share_to_feed"), Some("true"));
    m.is_ai_generated = false;
    m.video_url = Some("https://x/v.mp4".into());
    let p = m.params();
    assert!(!p
        .iter()
        .any(|(k, _)| k == "is_ai_generated" || k == "upload_type"));
}
