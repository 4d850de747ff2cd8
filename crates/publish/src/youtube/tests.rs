use super::*;

fn meta() -> VideoMeta {
    VideoMeta {
        title: "A <b> title".into(),
        description: "line\r\nline".into(),
        tags: vec!["one".into(), "One".into(), "two words".into()],
        ..VideoMeta::default()
    }
}

#[test]
fn bodies_always_carry_privacy_and_the_declarations() {
    let b = meta().body().unwrap();
    assert_eq!(b["snippet"]["title"], "A \u{2039}b\u{203A} title");
    assert_eq!(b["snippet"]["description"], "line\nline");
    assert_eq!(
        b["snippet"]["tags"],
        serde_json::json!(["one", "two words"])
    );
    assert_eq!(b["snippet"]["categoryId"], "22");
    assert!(b["snippet"].get("defaultLanguage").is_none());
    assert_eq!(b["status"]["privacyStatus"], "private");
    assert_eq!(b["status"]["containsSyntheticMedia"], false);
    assert_eq!(b["status"]["selfDeclaredMadeForKids"], false);
    assert!(b["status"].get("publishAt").is_none());
    assert!(b.get("localizations").is_none());
    assert_eq!(meta().parts(), "snippet,status");

    let m = VideoMeta {
        privacy: Privacy::Public,
        synthetic: true,
        made_for_kids: true,
        ..meta()
    };
    let b = m.body().unwrap();
    assert_eq!(b["status"]["privacyStatus"], "public");
    assert_eq!(b["status"]["containsSyntheticMedia"], true);
    assert_eq!(b["status"]["selfDeclaredMadeForKids"], true);
}

#[test]
fn publish_at_only_with_private_and_well_formed() {
    let mut m = meta();
    m.publish_at = Some("2030-01-02T03:04:05Z".into());
    assert_eq!(
        m.body().unwrap()["status"]["publishAt"],
        "2030-01-02T03:04:05Z"
    );
    m.publish_at = Some("2030-01-02T03:04:05.250+01:00".into());
    assert!(m.body().is_ok());
    for bad in [
        "tomorrow",
        "2030-13-02T03:04:05Z",
        "2030-01-02 03:04:05Z",
        "2030-01-02T03:04:05",
    ] {
        m.publish_at = Some(bad.into());
        assert!(matches!(m.body(), Err(YouTubeError::Invalid(_))), "{bad}");
    }
    m.publish_at = Some("2030-01-02T03:04:05Z".into());
    for p in [Privacy::Public, Privacy::Unlisted] {
        m.privacy = p;
        let e = m.body().unwrap_err();
        assert!(e.to_string().contains("needs privacy private"), "{e}");
    }
}

#[test]
fn localizations_need_a_default_language_and_fit_the_limits() {
    let mut m = meta();
    m.localizations
        .insert("ja".into(), ("日本語".repeat(50), "<説明>".into()));
    let e = m.body().unwrap_err();
    assert!(e.to_string().contains("default language"), "{e}");
    m.default_language = "en".into();
    let b = m.body().unwrap();
    assert_eq!(b["snippet"]["defaultLanguage"], "en");
    assert_eq!(
        b["localizations"]["ja"]["title"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        100
    );
    assert_eq!(
        b["localizations"]["ja"]["description"],
        "\u{2039}説明\u{203A}"
    );
    assert_eq!(m.parts(), "snippet,status,localizations");
    m.localizations
        .insert("fr".into(), (" ".into(), String::new()));
    assert!(m.body().is_err());
    m.localizations.remove("fr");
    m.localizations
        .insert("not a code".into(), ("t".into(), String::new()));
    assert!(m.body().is_err());
}

#[test]
fn an_empty_title_is_refused() {
    let m = VideoMeta {
        title: " \n".into(),
        ..meta()
    };
    assert!(matches!(m.body(), Err(YouTubeError::Invalid(_))));
}

#[test]
fn errors_are_read_from_youtubes_json() {
    let resp = |status: u16, body: &str| Response {
        status,
        headers: Default::default(),
        body: body.as_bytes().to_vec(),
    };
    let r = resp(
        403,
        r#"{"error":{"code":403,"message":"The request cannot be completed because you have exceeded your quota.","errors":[{"reason":"quotaExceeded","domain":"youtube.quota","message":"…"}]}}"#,
    );
    assert!(
        matches!(classify(&r), YouTubeError::Quota { reason, .. } if reason == "quotaExceeded")
    );
    let r = resp(
        400,
        r#"{"error":{"code":400,"message":"The user has exceeded the number of videos they may upload.","errors":[{"reason":"uploadLimitExceeded","domain":"youtube.video"}]}}"#,
    );
    assert!(
        matches!(classify(&r), YouTubeError::Quota { reason, .. } if reason == "uploadLimitExceeded")
    );
    let r = resp(
        400,
        r#"{"error":{"code":400,"message":"The request metadata specifies an invalid video title.","errors":[{"reason":"invalidTitle"}]}}"#,
    );
    match classify(&r) {
        YouTubeError::Rejected {
            status,
            reason,
            message,
            hint,
        } => {
            assert_eq!((status, reason.as_str()), (400, "invalidTitle"));
            assert!(message.contains("invalid video title"));
            assert!(hint.contains("title"));
        }
        e => panic!("{e:?}"),
    }
    let r = resp(
        403,
        r#"{"error":{"code":403,"message":"Insufficient Permission","errors":[{"reason":"insufficientPermissions"}]}}"#,
    );
    assert!(classify(&r).to_string().contains("scopes"));
    assert_eq!(classify(&resp(401, "")), YouTubeError::Unauthorized);
    let (reason, message) = api_error(&resp(502, "<html>bad gateway</html>"));
    assert_eq!(
        (reason.as_str(), message.as_str()),
        ("", "<html>bad gateway</html>")
    );
}

#[test]
fn shorts_are_square_or_taller_and_at_most_three_minutes() {
    assert!(is_short(1080, 1920, 59.0));
    assert!(is_short(1080, 1080, 180.0));
    assert!(!is_short(1080, 1920, 180.5));
    assert!(!is_short(1920, 1080, 30.0));
    assert!(!is_short(1081, 1080, 30.0));
    assert!(!is_short(0, 0, 10.0));
}

/// UTC milliseconds of a civil UTC time.
fn utc(y: i64, mo: i64, d: i64, h: i64, mi: i64) -> i64 {
    days_from_civil(y, mo, d) * DAY_MS + h * HOUR_MS + mi * 60_000
}

#[test]
fn quotas_reset_at_midnight_pacific_time_across_dst() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(year_of(days_from_civil(2024, 2, 29)), 2024);
    assert_eq!(year_of(days_from_civil(2023, 12, 31)), 2023);
    assert_eq!(year_of(-1), 1969);
    // DST 2025: 9 March to 2 November; 2024: 10 March to 3 November.
    assert_eq!(nth_sunday(2025, 3, 2), days_from_civil(2025, 3, 9));
    assert_eq!(nth_sunday(2025, 11, 1), days_from_civil(2025, 11, 2));
    assert_eq!(nth_sunday(2024, 3, 2), days_from_civil(2024, 3, 10));
    assert_eq!(nth_sunday(2024, 11, 1), days_from_civil(2024, 11, 3));
    assert_eq!(nth_sunday(2026, 11, 1), days_from_civil(2026, 11, 1));

    // Winter: midnight PST is 08:00 UTC.
    let now = utc(2025, 1, 15, 12, 0);
    assert_eq!(next_quota_reset(now), utc(2025, 1, 16, 8, 0));
    // Summer: midnight PDT is 07:00 UTC.
    let now = utc(2025, 7, 1, 6, 59);
    assert_eq!(next_quota_reset(now), utc(2025, 7, 1, 7, 0));
    assert_eq!(quota_reset_after(now), 60_000);
    assert_eq!(
        next_quota_reset(utc(2025, 7, 1, 7, 0)),
        utc(2025, 7, 2, 7, 0)
    );
    // Spring forward (Sun 9 March 2025): at 01:00 PST on the 9th (09:00 UTC) the next
    // midnight is 10 March 00:00 PDT = 07:00 UTC — a 23-hour day.
    let now = utc(2025, 3, 9, 8, 0); // 00:00 PST exactly
    assert_eq!(next_quota_reset(now), utc(2025, 3, 10, 7, 0));
    assert_eq!(quota_reset_after(now), 23 * HOUR_MS);
    assert_eq!(pacific_offset_ms(utc(2025, 3, 9, 9, 59)), -8 * HOUR_MS);
    assert_eq!(pacific_offset_ms(utc(2025, 3, 9, 10, 0)), -7 * HOUR_MS);
    // The evening before: 8 March 23:30 PST → 9 March 00:00 PST = 08:00 UTC.
    assert_eq!(
        next_quota_reset(utc(2025, 3, 9, 7, 30)),
        utc(2025, 3, 9, 8, 0)
    );
    // Fall back (Sun 2 November 2025): 00:00 PDT on the 2nd is 07:00 UTC; the next
    // midnight, 3 November 00:00 PST, is 08:00 UTC — a 25-hour day.
    let now = utc(2025, 11, 2, 7, 0);
    assert_eq!(quota_reset_after(now), 25 * HOUR_MS);
    assert_eq!(pacific_offset_ms(utc(2025, 11, 2, 8, 59)), -7 * HOUR_MS);
    assert_eq!(pacific_offset_ms(utc(2025, 11, 2, 9, 0)), -8 * HOUR_MS);
    // New Year's Eve across the UTC year boundary: 31 Dec 20:00 PST is 1 Jan 04:00 UTC.
    assert_eq!(
        next_quota_reset(utc(2026, 1, 1, 4, 0)),
        utc(2026, 1, 1, 8, 0)
    );
    for h in 0..(24 * 400) {
        let now = utc(2024, 1, 1, 0, 0) + h * HOUR_MS + 1234;
        let d = quota_reset_after(now);
        assert!(d > 0 && d <= 25 * HOUR_MS, "{h}: {d}");
    }
}

#[test]
fn rfc3339_and_language_checks() {
    assert!(is_rfc3339("2025-06-01T18:00:00Z"));
    assert!(is_rfc3339("2025-06-01T18:00:00-07:00"));
    assert!(!is_rfc3339("2025-06-01T18:00Z"));
    assert!(!is_rfc3339("2025-06-01T18:00:00+0700"));
    assert!(is_language("en") && is_language("pt-BR") && is_language("zh-Hans"));
    assert!(!is_language("") && !is_language("e n") && !is_language("-en"));
}

#[test]
fn multipart_bodies_have_a_boundary_found_in_neither_part() {
    let (ct, body) = multipart_related(
        &serde_json::json!({"a": 1}),
        "application/octet-stream",
        b"1\n00:00:01,000 --> 00:00:02,000\nhi\n",
    );
    let b = ct.split("boundary=").nth(1).unwrap();
    let text = String::from_utf8(body).unwrap();
    assert!(text.starts_with(&format!("--{b}\r\nContent-Type: application/json")));
    assert!(text.ends_with(&format!("\r\n--{b}--\r\n")));
    assert_eq!(text.matches(&format!("--{b}")).count(), 3);
}
