use super::*;

#[test]
fn base64url_matches_rfc_4648_vectors() {
    assert_eq!(base64url(b""), "");
    assert_eq!(base64url(b"f"), "Zg");
    assert_eq!(base64url(b"fo"), "Zm8");
    assert_eq!(base64url(b"foo"), "Zm9v");
    assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
    assert_eq!(base64url(&[0xfb, 0xff, 0xbf]), "-_-_");
}

#[test]
fn pkce_matches_rfc_7636_appendix_b() {
    let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    assert_eq!(
        pkce_challenge(v),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    assert_eq!(
        tiktok_challenge(v),
        "13d31e961a1ad8ec2f16b10c4c982e0876a878ad6df144566ee1894acb70f9c3"
    );
    let a = new_verifier();
    let b = new_verifier();
    assert_ne!(a, b);
    assert!((43..=128).contains(&a.len()));
    assert!(a
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c)));
    assert_ne!(new_state(), new_state());
}

#[test]
fn query_decoding() {
    let p = query_pairs("code=4%2F0Ab&state=x+y&empty=&flag");
    assert_eq!(param(&p, "code"), Some("4/0Ab"));
    assert_eq!(param(&p, "state"), Some("x y"));
    assert_eq!(param(&p, "empty"), Some(""));
    assert_eq!(param(&p, "flag"), Some(""));
    assert_eq!(percent_decode("%zz%4"), "%zz%4");
    assert_eq!(percent_decode("a%2"), "a%2");
    assert_eq!(percent_decode("%41"), "A");
}

#[test]
fn scrub_hides_plain_and_encoded_secrets() {
    let s = scrub("bad 1//abc/def and 1%2F%2Fabc%2Fdef", &["1//abc/def", "ab"]);
    assert_eq!(s, "bad [redacted] and [redacted]");
}

#[test]
fn token_expiry_and_debug() {
    let t = Token {
        access_token: "ya29.SECRETACCESS".into(),
        refresh_token: Some("1//SECRETREFRESH".into()),
        expires_at_ms: 10_000,
        scopes: vec![YOUTUBE.into()],
        extra: serde_json::json!({"open_id": "u1"}),
    };
    assert!(!t.expired(4_000, Duration::from_secs(5)));
    assert!(t.expired(5_000, Duration::from_secs(5)));
    assert!(t.expired(10_000, Duration::ZERO));
    let unknown = Token {
        expires_at_ms: 0,
        ..t.clone()
    };
    assert!(!unknown.expired(i64::MAX / 2, Duration::from_secs(60)));
    let d = format!("{t:?} {t:#?}");
    assert!(!d.contains("SECRET"), "{d}");
    assert!(d.contains("expires_at_ms") && d.contains("open_id"));
    assert_eq!(t.open_id(), Some("u1"));
    assert!(t.has_scope(YOUTUBE) && !t.has_scope(YOUTUBE_FORCE_SSL));
    // Serde round trip.
    let back: Token = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
    assert_eq!(back, t);
}

#[test]
fn flows_for_scopes() {
    assert_eq!(google_flow(&[YOUTUBE]), GoogleFlow::Device);
    assert_eq!(google_flow(&[YOUTUBE, "openid"]), GoogleFlow::Device);
    assert_eq!(google_flow(&[YOUTUBE_FORCE_SSL]), GoogleFlow::Loopback);
    assert_eq!(
        google_flow(&[YOUTUBE, YOUTUBE_UPLOAD]),
        GoogleFlow::Loopback
    );
    assert_eq!(
        google_flow(&default_scopes(Platform::YouTube, true)),
        GoogleFlow::Loopback
    );
    assert_eq!(
        google_flow(&default_scopes(Platform::YouTube, false)),
        GoogleFlow::Device
    );
    assert!(needs_fixed_port(Platform::Instagram) && !needs_fixed_port(Platform::TikTok));
}

#[test]
fn client_secrets_files() {
    let google = r#"{"installed":{"client_id":"id.apps.googleusercontent.com","client_secret":"GOCSPX-s","auth_uri":"https://accounts.google.com/o/oauth2/auth","token_uri":"https://oauth2.googleapis.com/token","redirect_uris":["http://localhost"]}}"#;
    let s = ClientSecrets::parse("client_secret.json", google, Platform::YouTube).unwrap();
    assert_eq!(s.client_id, "id.apps.googleusercontent.com");
    assert_eq!(s.kind, SecretsKind::Google);
    assert!(!format!("{s:?}").contains("GOCSPX"));

    let e = ClientSecrets::parse(
        "client_secret.json",
        r#"{"installed":{"client_secret":"x"}}"#,
        Platform::YouTube,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(e, "client_secret.json: no `installed.client_id`");
    let e = ClientSecrets::parse(
        "c.json",
        r#"{"web":{"client_id":"a","client_secret":"b"}}"#,
        Platform::YouTube,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("c.json: ")
            && e.contains("Desktop app")
            && e.contains("TVs and Limited Input devices"),
        "{e}"
    );
    let e = ClientSecrets::parse("c.json", "{nope", Platform::YouTube)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("c.json: not JSON"), "{e}");

    let t = ClientSecrets::parse(
        "tiktok.json",
        r#"{"client_key":"k","client_secret":"s"}"#,
        Platform::TikTok,
    )
    .unwrap();
    assert_eq!((t.client_id.as_str(), t.kind), ("k", SecretsKind::TikTok));
    let e = ClientSecrets::parse("tiktok.json", r#"{"client_key":" "}"#, Platform::TikTok)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "tiktok.json: `client_key` is empty");

    let f = ClientSecrets::parse(
        "meta.json",
        r#"{"app_id": 1234567890, "app_secret": "s"}"#,
        Platform::Instagram,
    )
    .unwrap();
    assert_eq!(f.client_id, "1234567890");
    let e = ClientSecrets::parse("meta.json", r#"{"app_id":"1"}"#, Platform::Instagram)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "meta.json: no `app_secret`");
    assert!(matches!(
        f.check(Platform::TikTok),
        Err(OAuthError::WrongSecrets { .. })
    ));
}
