use super::*;

#[test]
fn doc_example_plan_and_ranges() {
    let p = chunk_plan(50_000_123).unwrap();
    assert_eq!((p.chunk_size, p.count), (10_000_000, 5));
    assert_eq!(p.content_range(0), "bytes 0-9999999/50000123");
    assert_eq!(p.content_range(4), "bytes 40000000-50000122/50000123");
}

#[test]
fn quota_and_auth_errors_are_told_apart() {
    let r = |status: u16, code: &str| {
        let j = json!({"error": {"code": code, "message": "m", "log_id": "L"}});
        let resp = Response {
            status,
            headers: Default::default(),
            body: j.to_string().into_bytes(),
        };
        api_error(&resp, &j)
    };
    assert_eq!(
        r(403, "spam_risk_too_many_posts").retry_after(),
        Some(Duration::from_secs(86400))
    );
    assert_eq!(
        r(429, "rate_limit_exceeded").retry_after(),
        Some(Duration::from_secs(60))
    );
    assert!(matches!(
        r(401, "access_token_invalid"),
        TikTokError::Unauthorized { .. }
    ));
    match r(403, "unaudited_client_can_only_post_to_private_accounts") {
        TikTokError::Rejected { hint, message, .. } => {
            assert!(hint.contains("private") && message.contains("log_id L"))
        }
        e => panic!("{e:?}"),
    }
}
