//! The OAuth flows against the loopback fakes of Google's, TikTok's and Facebook's servers.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use reelsmith_publish::http::{Body, Client};
use reelsmith_publish::oauth::{
    self, ClientSecrets, DeviceCode, GoogleFlow, LoopbackFlow, OAuthError, SecretsKind, Token,
    INSTAGRAM_SCOPES, TIKTOK_SCOPES, YOUTUBE, YOUTUBE_FORCE_SSL,
};
use reelsmith_publish::testing::oauth::{
    Consent, DeviceScript, FakeOAuth, GoogleClientType, FACEBOOK_APP_SECRET, GOOGLE_CLIENT_SECRET,
    OPEN_ID, TIKTOK_CLIENT_SECRET, USER_CODE, VERIFICATION_URL,
};
use reelsmith_publish::testing::Server;
use reelsmith_publish::{Endpoints, Platform};

fn client() -> Client {
    Client::new(Duration::from_secs(5), Duration::from_millis(1))
}

struct Setup {
    fake: FakeOAuth,
    _server: Server,
    endpoints: Endpoints,
}

fn setup() -> Setup {
    let fake = FakeOAuth::new();
    let server = Server::start(fake.clone());
    let endpoints = FakeOAuth::endpoints(&server.url());
    Setup {
        fake,
        _server: server,
        endpoints,
    }
}

/// A virtual clock: `sleep` records the wait and advances `now`.
struct Clock {
    base: Instant,
    t: Cell<Duration>,
    waits: RefCell<Vec<Duration>>,
}

impl Clock {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            t: Cell::new(Duration::ZERO),
            waits: RefCell::new(Vec::new()),
        }
    }

    fn poll(
        &self,
        s: &Setup,
        secrets: &ClientSecrets,
        code: &DeviceCode,
    ) -> Result<Token, OAuthError> {
        let now = || self.base + self.t.get();
        let mut sleep = |d: Duration| {
            self.waits.borrow_mut().push(d);
            self.t.set(self.t.get() + d);
        };
        oauth::device_poll(&client(), &s.endpoints, secrets, code, &now, &mut sleep)
    }

    fn waits_s(&self) -> Vec<u64> {
        self.waits.borrow().iter().map(Duration::as_secs).collect()
    }
}

/// Asserts that no token, code or secret the fake knows appears in `text`.
fn assert_no_secret(fake: &FakeOAuth, text: &str) {
    let mut secrets = fake.issued_tokens();
    secrets.extend(
        [
            GOOGLE_CLIENT_SECRET,
            TIKTOK_CLIENT_SECRET,
            FACEBOOK_APP_SECRET,
        ]
        .map(String::from),
    );
    for s in secrets {
        assert!(!text.contains(&s), "{s:?} leaked into: {text}");
    }
}

fn google() -> ClientSecrets {
    FakeOAuth::client_secrets(Platform::YouTube)
}

/// A device-flow login approved at the first poll.
fn device_login(s: &Setup) -> Token {
    let code = oauth::device_start(&client(), &s.endpoints, &google(), &[YOUTUBE]).unwrap();
    Clock::new().poll(s, &google(), &code).unwrap()
}

// --- Google's device flow --------------------------------------------------------------------

#[test]
fn device_flow_waits_the_interval_and_five_more_seconds_after_slow_down() {
    let s = setup();
    s.fake
        .set_device_script(DeviceScript::approve_after(1).with_slow_down());
    let code = oauth::device_start(&client(), &s.endpoints, &google(), &[YOUTUBE]).unwrap();
    assert_eq!(code.user_code, USER_CODE);
    assert_eq!(code.verification_url, VERIFICATION_URL);
    assert_eq!((code.interval, code.expires_in), (5, 1800));
    assert!(!format!("{code:?}").contains(&code.device_code));

    let clock = Clock::new();
    let token = clock.poll(&s, &google(), &code).unwrap();
    // Before each poll the interval: pending after 5 s, slow_down after 5 s, then 5 + 5 s.
    assert_eq!(clock.waits_s(), vec![5, 5, 10]);
    assert_eq!(s.fake.poll_times().len(), 3);
    assert_eq!(s.fake.poll_gaps().len(), 2);

    let started = s.fake.requests_to("/device/code");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].field("scope"), Some(YOUTUBE));
    assert_eq!(
        started[0].field("client_id"),
        Some(google().client_id.as_str())
    );
    let polls = s.fake.requests_to("/token");
    assert_eq!(
        polls.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![428, 403, 200]
    );
    for p in &polls {
        assert_eq!(
            p.field("grant_type"),
            Some("urn:ietf:params:oauth:grant-type:device_code")
        );
        assert_eq!(p.field("device_code"), Some(code.device_code.as_str()));
        assert_eq!(p.field("client_secret"), Some(GOOGLE_CLIENT_SECRET));
    }

    assert!(token.access_token.starts_with("ya29."));
    assert!(token.refresh_token.is_some());
    assert_eq!(token.scopes, vec![YOUTUBE.to_string()]);
    let now = oauth::now_ms();
    assert!((now + 3_500_000..=now + 3_600_000).contains(&token.expires_at_ms));
    assert!(!token.expired(now, Duration::from_secs(60)));
    assert!(token.expired(now, Duration::from_secs(3600)));
    assert_no_secret(&s.fake, &format!("{token:?}"));
}

#[test]
fn device_flow_denied() {
    let s = setup();
    s.fake.set_device_script(DeviceScript::deny_after(2));
    let code = oauth::device_start(&client(), &s.endpoints, &google(), &[YOUTUBE]).unwrap();
    let clock = Clock::new();
    let e = clock.poll(&s, &google(), &code).unwrap_err();
    assert_eq!(
        e,
        OAuthError::Denied {
            platform: Platform::YouTube
        }
    );
    assert!(
        e.to_string().contains("reelsmith accounts add youtube"),
        "{e}"
    );
    assert!(e.needs_new_login());
    assert_eq!(clock.waits_s(), vec![5, 5, 5]);
}

#[test]
fn device_flow_expired_by_the_server_or_by_the_clock() {
    let s = setup();
    s.fake.set_device_script(DeviceScript::expire_after(1));
    let code = oauth::device_start(&client(), &s.endpoints, &google(), &[YOUTUBE]).unwrap();
    let e = Clock::new().poll(&s, &google(), &code).unwrap_err();
    assert_eq!(
        e,
        OAuthError::Expired {
            platform: Platform::YouTube
        }
    );
    assert!(e.to_string().contains("accounts add youtube` again"), "{e}");

    // Never approved: the client stops at `expires_in` without asking again.
    s.fake.set_device_script(DeviceScript::approve_after(1000));
    s.fake.set_expires_in(12);
    let code = oauth::device_start(&client(), &s.endpoints, &google(), &[YOUTUBE]).unwrap();
    let before = s.fake.poll_times().len();
    let clock = Clock::new();
    let e = clock.poll(&s, &google(), &code).unwrap_err();
    assert_eq!(
        e,
        OAuthError::Expired {
            platform: Platform::YouTube
        }
    );
    assert_eq!(clock.waits_s(), vec![5, 5, 5]);
    assert_eq!(s.fake.poll_times().len() - before, 2);
}

#[test]
fn device_flow_refuses_caption_scopes_and_desktop_clients() {
    let s = setup();
    assert_eq!(
        oauth::google_flow(&[YOUTUBE_FORCE_SSL]),
        GoogleFlow::Loopback
    );
    let e =
        oauth::device_start(&client(), &s.endpoints, &google(), &[YOUTUBE_FORCE_SSL]).unwrap_err();
    assert!(matches!(e, OAuthError::DeviceScope { .. }), "{e:?}");
    assert!(e.to_string().contains("loopback"), "{e}");
    assert!(s.fake.requests().is_empty(), "refused before asking");

    s.fake.set_google_client_type(GoogleClientType::Desktop);
    let e = oauth::device_start(&client(), &s.endpoints, &google(), &[YOUTUBE]).unwrap_err();
    assert!(
        e.to_string().contains("TVs and Limited Input devices"),
        "{e}"
    );

    let tiktok = FakeOAuth::client_secrets(Platform::TikTok);
    let e = oauth::device_start(&client(), &s.endpoints, &tiktok, &[YOUTUBE]).unwrap_err();
    assert!(matches!(e, OAuthError::WrongSecrets { .. }), "{e:?}");
}

#[test]
fn device_flow_rides_out_a_5xx_but_reports_three_in_a_row() {
    let s = setup();
    s.fake.set_device_script(DeviceScript::approve_after(0));
    let code = oauth::device_start(&client(), &s.endpoints, &google(), &[YOUTUBE]).unwrap();
    s.fake.fail_next(503, 1);
    let clock = Clock::new();
    clock.poll(&s, &google(), &code).unwrap();
    assert_eq!(clock.waits_s(), vec![5, 5]);

    let code = oauth::device_start(&client(), &s.endpoints, &google(), &[YOUTUBE]).unwrap();
    s.fake.fail_next(503, 3);
    let e = Clock::new().poll(&s, &google(), &code).unwrap_err();
    assert!(e.is_transient(), "{e:?}");
}

// --- Refresh ---------------------------------------------------------------------------------

#[test]
fn google_refresh_keeps_the_refresh_token() {
    let s = setup();
    let token = device_login(&s);
    let fresh = oauth::refresh(
        &client(),
        &s.endpoints,
        Platform::YouTube,
        &google(),
        &token,
    )
    .unwrap();
    assert_ne!(fresh.access_token, token.access_token);
    assert_eq!(fresh.refresh_token, token.refresh_token);
    assert_eq!(fresh.scopes, token.scopes);
    let last = s.fake.requests().pop().unwrap();
    assert_eq!(last.path, "/token");
    assert_eq!(last.field("grant_type"), Some("refresh_token"));
    assert_eq!(last.field("refresh_token"), token.refresh_token.as_deref());
    assert_eq!(last.field("client_id"), Some(google().client_id.as_str()));
    assert_eq!(last.field("client_secret"), Some(GOOGLE_CLIENT_SECRET));
}

#[test]
fn google_refresh_refused_names_testing_apps_and_no_token() {
    let s = setup();
    let token = device_login(&s);
    s.fake.revoke(token.refresh_token.as_deref().unwrap());
    let e = oauth::refresh(
        &client(),
        &s.endpoints,
        Platform::YouTube,
        &google(),
        &token,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            OAuthError::Refused {
                platform: Platform::YouTube,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.needs_new_login() && !e.is_transient());
    let msg = e.to_string();
    for needle in [
        "invalid_grant",
        "\"Testing\"",
        "7 days",
        "In production",
        "reelsmith accounts add youtube",
        "revoked",
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
    assert_no_secret(&s.fake, &msg);
    assert_no_secret(&s.fake, &format!("{e:?}"));

    // A deleted client is told apart.
    let mut wrong = google();
    wrong.client_secret = "GOCSPX-reset".into();
    let e = oauth::refresh(&client(), &s.endpoints, Platform::YouTube, &wrong, &token).unwrap_err();
    assert!(e.to_string().contains("invalid_client"), "{e}");
    assert!(!e.to_string().contains("GOCSPX-reset"), "{e}");
}

#[test]
fn refresh_failures_without_an_answer_are_transient_and_secret_free() {
    let s = setup();
    let token = device_login(&s);
    s.fake.fail_next(503, 1);
    let e = oauth::refresh(
        &client(),
        &s.endpoints,
        Platform::YouTube,
        &google(),
        &token,
    )
    .unwrap_err();
    assert!(e.is_transient(), "{e:?}");

    // Nobody listening: Facebook's GET carries the secret and the token in its query.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        FakeOAuth::endpoints(&format!("http://127.0.0.1:{port}"))
    };
    let fb = Token {
        access_token: "EAAsecret-long-lived".into(),
        refresh_token: None,
        expires_at_ms: oauth::now_ms() + 86_400_000,
        scopes: vec![],
        extra: serde_json::json!({}),
    };
    s.fake
        .add_access_token(Platform::Instagram, &fb.access_token);
    let secrets = FakeOAuth::client_secrets(Platform::Instagram);
    let e = oauth::refresh(&client(), &dead, Platform::Instagram, &secrets, &fb).unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert_no_secret(&s.fake, &e.to_string());
    assert_no_secret(&s.fake, &format!("{e:?}"));
}

// --- The loopback redirect flow --------------------------------------------------------------

/// A browser: follows the consent page's redirect to the loopback listener; returns the
/// listener's status.
fn browse(auth_url: String) -> std::thread::JoinHandle<u16> {
    std::thread::spawn(move || {
        let c = client();
        let r = c.send("GET", &auth_url, &[], Body::Empty).unwrap();
        assert_eq!(r.status, 302, "{}", r.text());
        let loc = r.header("location").unwrap().to_string();
        c.send("GET", &loc, &[], Body::Empty).unwrap().status
    })
}

#[test]
fn loopback_flow_end_to_end_for_captions() {
    let s = setup();
    let flow = LoopbackFlow::start(
        Platform::YouTube,
        &s.endpoints,
        &google(),
        &[YOUTUBE_FORCE_SSL],
        None,
    )
    .unwrap();
    assert_ne!(flow.port(), 0);
    assert_eq!(
        flow.redirect_uri(),
        format!("http://127.0.0.1:{}/", flow.port())
    );
    assert_eq!(
        flow.ssh_command("me@gpu-box"),
        format!("ssh -L {0}:127.0.0.1:{0} me@gpu-box", flow.port())
    );
    let url = flow.auth_url().to_string();
    assert!(url.starts_with(&s.endpoints.google_auth));
    let challenge = oauth::pkce_challenge(flow.verifier());
    for part in [
        format!("code_challenge={challenge}"),
        "code_challenge_method=S256".into(),
        "response_type=code".into(),
        "access_type=offline".into(),
        format!("state={}", flow.state()),
        format!(
            "scope={}",
            reelsmith_publish::http::urlencode(YOUTUBE_FORCE_SSL)
        ),
    ] {
        assert!(url.contains(&part), "{part} not in {url}");
    }

    // A favicon request first is answered and ignored.
    let port = flow.port();
    let browser = std::thread::spawn(move || {
        let c = client();
        let fav = c
            .send(
                "GET",
                &format!("http://127.0.0.1:{port}/favicon.ico"),
                &[],
                Body::Empty,
            )
            .unwrap()
            .status;
        (fav, browse(url).join().unwrap())
    });
    let code = flow.wait(Duration::from_secs(10)).unwrap();
    assert_eq!(browser.join().unwrap(), (404, 200));
    assert!(code.starts_with("4/0fake-code-"), "decoded: {code}");

    let token = flow
        .exchange(&client(), &s.endpoints, &google(), &code)
        .unwrap();
    assert!(token.has_scope(YOUTUBE_FORCE_SSL));
    assert!(token.refresh_token.is_some());
    let ex = s.fake.requests().pop().unwrap();
    assert_eq!(ex.field("grant_type"), Some("authorization_code"));
    assert_eq!(ex.field("code_verifier"), Some(flow.verifier()));
    assert_eq!(ex.field("redirect_uri"), Some(flow.redirect_uri()));
    assert_eq!(ex.field("client_secret"), Some(GOOGLE_CLIENT_SECRET));

    // A code is single-use; a wrong verifier is refused, and neither leaks.
    let e = flow
        .exchange(&client(), &s.endpoints, &google(), &code)
        .unwrap_err();
    assert!(e.to_string().contains("accounts add youtube"), "{e}");
    assert_no_secret(&s.fake, &e.to_string());
}

#[test]
fn loopback_flow_refuses_a_wrong_state_and_reports_a_denial() {
    let s = setup();
    let flow =
        LoopbackFlow::start(Platform::YouTube, &s.endpoints, &google(), &[YOUTUBE], None).unwrap();
    let port = flow.port();
    let browser = std::thread::spawn(move || {
        client()
            .send(
                "GET",
                &format!("http://127.0.0.1:{port}/?code=4%2Fstolen&state=someone-else"),
                &[],
                Body::Empty,
            )
            .unwrap()
            .status
    });
    let e = flow.wait(Duration::from_secs(10)).unwrap_err();
    assert_eq!(
        e,
        OAuthError::StateMismatch {
            platform: Platform::YouTube
        }
    );
    assert_eq!(browser.join().unwrap(), 400);

    s.fake.set_consent(Consent::Deny);
    let flow =
        LoopbackFlow::start(Platform::YouTube, &s.endpoints, &google(), &[YOUTUBE], None).unwrap();
    let browser = browse(flow.auth_url().to_string());
    let e = flow.wait(Duration::from_secs(10)).unwrap_err();
    assert_eq!(
        e,
        OAuthError::Denied {
            platform: Platform::YouTube
        }
    );
    assert_eq!(browser.join().unwrap(), 400);
}

#[test]
fn loopback_flow_times_out_with_the_tunnel_hint() {
    let s = setup();
    let flow =
        LoopbackFlow::start(Platform::YouTube, &s.endpoints, &google(), &[YOUTUBE], None).unwrap();
    let e = flow.wait(Duration::from_millis(200)).unwrap_err();
    assert!(matches!(e, OAuthError::Timeout { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains(&format!("ssh -L {0}:127.0.0.1:{0}", flow.port())),
        "{e}"
    );
    // The port is taken while the flow lives.
    let e = LoopbackFlow::start(
        Platform::YouTube,
        &s.endpoints,
        &google(),
        &[YOUTUBE],
        Some(flow.port()),
    )
    .unwrap_err();
    assert!(matches!(e, OAuthError::Listen { .. }), "{e:?}");
}

#[test]
fn pasted_addresses_and_codes() {
    let s = setup();
    let flow =
        LoopbackFlow::start(Platform::YouTube, &s.endpoints, &google(), &[YOUTUBE], None).unwrap();
    let state = flow.state().to_string();
    let url = format!(
        "http://127.0.0.1:{}/?state={state}&code=4%2F0AbCd-ef&scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fyoutube",
        flow.port()
    );
    assert_eq!(flow.code_from_pasted(&url).unwrap(), "4/0AbCd-ef");
    assert_eq!(
        flow.code_from_pasted(&format!("  {url}\n")).unwrap(),
        "4/0AbCd-ef"
    );
    assert_eq!(flow.code_from_pasted("4/0AbCd-ef").unwrap(), "4/0AbCd-ef");
    assert_eq!(flow.code_from_pasted("4%2F0AbCd-ef").unwrap(), "4/0AbCd-ef");
    // Without the address's beginning, and without a state.
    assert_eq!(flow.code_from_pasted("?code=abc").unwrap(), "abc");
    assert_eq!(
        flow.code_from_pasted(&format!("code=abc&state={state}#_=_"))
            .unwrap(),
        "abc"
    );
    assert_eq!(
        flow.code_from_pasted("http://127.0.0.1:1/?code=abc&state=other"),
        Err(OAuthError::StateMismatch {
            platform: Platform::YouTube
        })
    );
    assert_eq!(
        flow.code_from_pasted(&format!(
            "http://127.0.0.1:1/?error=access_denied&state={state}"
        )),
        Err(OAuthError::Denied {
            platform: Platform::YouTube
        })
    );
    for bad in ["", "   ", "http://127.0.0.1:1/?state=x", "two words"] {
        let e = flow.code_from_pasted(bad).unwrap_err();
        assert!(
            matches!(
                e,
                OAuthError::BadPaste { .. } | OAuthError::StateMismatch { .. }
            ),
            "{bad:?}: {e:?}"
        );
    }
}

#[test]
fn pkce_s256_matches_rfc_7636_appendix_b() {
    assert_eq!(
        oauth::pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    let v = oauth::new_verifier();
    assert!((43..=128).contains(&v.len()), "{v}");
    assert_ne!(v, oauth::new_verifier());
}

// --- TikTok and Facebook ---------------------------------------------------------------------

#[test]
fn tiktok_code_exchange_and_refresh() {
    let s = setup();
    let secrets = FakeOAuth::client_secrets(Platform::TikTok);
    let flow = LoopbackFlow::start(
        Platform::TikTok,
        &s.endpoints,
        &secrets,
        &TIKTOK_SCOPES,
        None,
    )
    .unwrap();
    assert_eq!(
        flow.redirect_uri(),
        format!("http://127.0.0.1:{}/callback/", flow.port())
    );
    let url = flow.auth_url().to_string();
    assert!(url.contains("client_key=awfakeclientkey"), "{url}");
    assert!(
        url.contains("scope=user.info.basic%2Cvideo.publish%2Cvideo.upload"),
        "{url}"
    );
    // TikTok's desktop challenge is hex SHA-256.
    assert!(url.contains(&format!(
        "code_challenge={}",
        oauth::tiktok_challenge(flow.verifier())
    )));

    let redirected = s.fake.consent(&url).unwrap();
    let code = flow.code_from_pasted(&redirected).unwrap();

    // The wrong verifier is refused as TikTok does.
    let e = oauth::exchange_code(
        &client(),
        &s.endpoints,
        Platform::TikTok,
        &secrets,
        &code,
        flow.redirect_uri(),
        "not-the-verifier-not-the-verifier-not-the-verifier",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("Code verifier or code challenge is invalid"),
        "{e}"
    );

    let token = flow
        .exchange(&client(), &s.endpoints, &secrets, &code)
        .unwrap();
    assert_eq!(token.open_id(), Some(OPEN_ID));
    assert_eq!(
        token.scopes,
        TIKTOK_SCOPES
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    );
    let now = oauth::now_ms();
    assert!(token.expires_at_ms > now + 86_000_000);
    assert!(token.extra["refresh_expires_at_ms"].as_i64().unwrap() > now + 31_000_000_000);
    let ex = s.fake.requests().pop().unwrap();
    assert_eq!(ex.path, "/v2/oauth/token/");
    for (k, v) in [
        ("client_key", secrets.client_id.as_str()),
        ("client_secret", TIKTOK_CLIENT_SECRET),
        ("code", code.as_str()),
        ("grant_type", "authorization_code"),
        ("redirect_uri", flow.redirect_uri()),
        ("code_verifier", flow.verifier()),
    ] {
        assert_eq!(ex.field(k), Some(v), "{k}");
    }

    let fresh =
        oauth::refresh(&client(), &s.endpoints, Platform::TikTok, &secrets, &token).unwrap();
    assert_ne!(
        fresh.refresh_token, token.refresh_token,
        "TikTok's new refresh token is kept"
    );
    assert_eq!(fresh.open_id(), Some(OPEN_ID));
    let last = s.fake.requests().pop().unwrap();
    assert_eq!(last.field("grant_type"), Some("refresh_token"));

    // The old refresh token is gone: refused, with TikTok's causes.
    let e =
        oauth::refresh(&client(), &s.endpoints, Platform::TikTok, &secrets, &token).unwrap_err();
    assert!(matches!(e, OAuthError::Refused { .. }), "{e:?}");
    assert!(e.to_string().contains("365 days"), "{e}");
    assert_no_secret(&s.fake, &e.to_string());
}

#[test]
fn facebook_code_exchange_gives_a_long_lived_token() {
    let s = setup();
    let secrets = FakeOAuth::client_secrets(Platform::Instagram);
    assert!(oauth::needs_fixed_port(Platform::Instagram));
    let flow = LoopbackFlow::start(
        Platform::Instagram,
        &s.endpoints,
        &secrets,
        &INSTAGRAM_SCOPES,
        None,
    )
    .unwrap();
    assert_eq!(
        flow.redirect_uri(),
        format!("http://localhost:{}/callback/", flow.port())
    );
    let redirected = s.fake.consent(flow.auth_url()).unwrap();
    assert!(redirected.ends_with("#_=_"), "{redirected}");
    let code = flow.code_from_pasted(&redirected).unwrap();
    let token = flow
        .exchange(&client(), &s.endpoints, &secrets, &code)
        .unwrap();
    assert!(token.access_token.starts_with("EAAfake-long-"));
    assert_eq!(token.refresh_token, None);
    assert_eq!(
        token.scopes,
        INSTAGRAM_SCOPES
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    );
    let now = oauth::now_ms();
    assert!(token.expires_at_ms > now + 59 * 86_400_000);

    let reqs = s.fake.requests_to("/v21.0/oauth/access_token");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].field("code"), Some(code.as_str()));
    assert_eq!(reqs[0].field("redirect_uri"), Some(flow.redirect_uri()));
    assert_eq!(reqs[0].field("client_secret"), Some(FACEBOOK_APP_SECRET));
    assert_eq!(reqs[1].field("grant_type"), Some("fb_exchange_token"));

    // Re-exchanged while valid; refused once revoked or expired.
    let fresh = oauth::refresh(
        &client(),
        &s.endpoints,
        Platform::Instagram,
        &secrets,
        &token,
    )
    .unwrap();
    assert_ne!(fresh.access_token, token.access_token);
    assert_eq!(fresh.scopes, token.scopes);
    s.fake.revoke(&fresh.access_token);
    let e = oauth::refresh(
        &client(),
        &s.endpoints,
        Platform::Instagram,
        &secrets,
        &fresh,
    )
    .unwrap_err();
    assert!(matches!(e, OAuthError::Refused { .. }), "{e:?}");
    assert!(e.to_string().contains("60 days"), "{e}");
    assert_no_secret(&s.fake, &e.to_string());
    let expired = Token {
        expires_at_ms: now - 1,
        ..token
    };
    let n = s.fake.requests().len();
    let e = oauth::refresh(
        &client(),
        &s.endpoints,
        Platform::Instagram,
        &secrets,
        &expired,
    )
    .unwrap_err();
    assert!(matches!(e, OAuthError::Refused { .. }), "{e:?}");
    assert_eq!(s.fake.requests().len(), n, "an expired token is not sent");

    // Denied on the consent page.
    s.fake.set_consent(Consent::Deny);
    let flow = LoopbackFlow::start(
        Platform::Instagram,
        &s.endpoints,
        &secrets,
        &INSTAGRAM_SCOPES,
        None,
    )
    .unwrap();
    let redirected = s.fake.consent(flow.auth_url()).unwrap();
    assert_eq!(
        flow.code_from_pasted(&redirected),
        Err(OAuthError::Denied {
            platform: Platform::Instagram
        })
    );
}

// --- Client secrets, tokens ------------------------------------------------------------------

#[test]
fn client_secrets_files_and_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    for p in Platform::ALL {
        let path = dir.path().join(format!("{p}.json"));
        std::fs::write(&path, FakeOAuth::client_secrets_json(p)).unwrap();
        let s = ClientSecrets::from_file(&path, p).unwrap();
        assert_eq!(s, FakeOAuth::client_secrets(p));
        assert_eq!(s.kind, SecretsKind::for_platform(p));
        assert!(!format!("{s:?}").contains(&s.client_secret));
    }
    let path = dir.path().join("client_secret_web.json");
    std::fs::write(&path, r#"{"web":{"client_id":"x","client_secret":"y"}}"#).unwrap();
    let e = ClientSecrets::from_file(&path, Platform::YouTube)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("client_secret_web.json") && e.contains("Desktop app"),
        "{e}"
    );

    let path = dir.path().join("client_secret.json");
    std::fs::write(&path, r#"{"installed":{"client_id":"x"}}"#).unwrap();
    let e = ClientSecrets::from_file(&path, Platform::YouTube)
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("client_secret.json: no `installed.client_secret`"),
        "{e}"
    );

    let missing = dir.path().join("nope.json");
    let e = ClientSecrets::from_file(&missing, Platform::TikTok)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.json: cannot read it"), "{e}");

    // TikTok's file given for YouTube names what is missing.
    let e = ClientSecrets::parse(
        "tiktok.json",
        &FakeOAuth::client_secrets_json(Platform::TikTok),
        Platform::YouTube,
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("tiktok.json: no `installed`"), "{e}");
}

#[test]
fn token_debug_and_errors_show_no_secret() {
    let s = setup();
    let token = device_login(&s);
    assert_no_secret(&s.fake, &format!("{token:?} {token:#?}"));
    // Serialized for the store, the tokens are there (the store keeps the file 0600).
    let json = serde_json::to_string(&token).unwrap();
    assert!(json.contains(&token.access_token));
    let back: Token = serde_json::from_str(&json).unwrap();
    assert_eq!(back, token);
}
