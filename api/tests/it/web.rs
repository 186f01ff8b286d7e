//! The dashboard's web security, as an attacker would try it: the session cookie is a
//! server-side session (never the token), ends on sign-out and with its token; sign-in and
//! sign-out refuse posts from other origins (in Chromium, from a page on a second local
//! origin); wrong sign-ins are rate limited per client; any `next` is safe; every answer
//! carries the security headers.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use fantoccini::Locator;
use mttx_api::{App, AppOptions};

use crate::browser::{browser, chromedriver, sign_in, wait_for};
use crate::common::{golden_folded, oneshot, send};

struct Site {
    router: Router,
    token: String,
    state: mttx_state::State,
    facts: String,
    dir: std::path::PathBuf,
}

async fn site(name: &str, options: AppOptions) -> Site {
    let (dir, _, facts, state) = golden_folded(name).await;
    let token = state.create_token(1, "web", None).await.unwrap();
    let app = App::open(&facts, state.clone(), None, options)
        .await
        .unwrap();
    Site {
        router: mttx_api::app(app),
        token,
        state,
        facts,
        dir,
    }
}

/// A form post to `path`: status, headers (lower-case names) and body.
async fn post(
    router: &Router,
    path: &str,
    form: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    let mut request = Request::post(path)
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    send(router, request.body(Body::from(form.to_owned())).unwrap()).await
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A GET with a cookie: status, headers, body.
async fn get_with_cookie(
    router: &Router,
    path: &str,
    cookie: &str,
) -> (u16, Vec<(String, String)>, String) {
    let request = Request::get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    send(router, request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_server_side_and_end_with_sign_out_or_their_token() {
    let s = site("web-sessions", AppOptions::default()).await;
    let form = format!("token={}&next=%2Fdashboard%3Fweek%3D2026-W44", s.token);
    let (status, headers, body) = post(
        &s.router,
        "/login",
        &form,
        &[("origin", "http://127.0.0.1:8080")],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(
        header(&headers, "location"),
        Some("/dashboard?week=2026-W44")
    );
    let set = header(&headers, "set-cookie").unwrap().to_owned();
    let id = set
        .strip_prefix("mttx_session=")
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    // The cookie is not the token: 64 hex digits of its own, HttpOnly, SameSite=Strict.
    assert!(!set.contains(&s.token), "{set}");
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{set}"
    );
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP: no Secure flag: {set}");
    let cookie = format!("mttx_session={id}");
    let (status, headers, page) =
        get_with_cookie(&s.router, "/dashboard?week=2026-W44", &cookie).await;
    assert_eq!(status, 200, "{page}");
    // Security headers on a page with data.
    for (name, want) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
        ("referrer-policy", "same-origin"),
    ] {
        assert_eq!(header(&headers, name), Some(want), "{name}");
    }
    let csp = header(&headers, "content-security-policy").unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(header(&headers, "strict-transport-security").is_none());

    // Signing out ends the session on the server: the same cookie no longer signs in.
    let (status, headers, _) = post(
        &s.router,
        "/logout",
        "",
        &[
            ("origin", "http://127.0.0.1:8080"),
            ("cookie", cookie.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert!(
        header(&headers, "set-cookie")
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, _, page) = get_with_cookie(&s.router, "/dashboard", &cookie).await;
    assert_eq!(status, 401, "{page}");
    assert!(page.contains("signed out"), "{page}");

    // A session ends with its token.
    let (_, headers, _) = post(&s.router, "/login", &format!("token={}", s.token), &[]).await;
    let set = header(&headers, "set-cookie").unwrap();
    let cookie = set.split(';').next().unwrap().to_owned();
    let (status, _, _) = get_with_cookie(&s.router, "/dashboard", &cookie).await;
    assert_eq!(status, 200);
    let id = s.state.list_tokens(1).await.unwrap()[0].id;
    s.state.revoke_token(id).await.unwrap();
    let (status, _, page) = get_with_cookie(&s.router, "/dashboard", &cookie).await;
    assert_eq!(status, 401, "{page}");
    assert!(page.contains("revoked"), "{page}");

    // `next` with CR/LF or another host: back to the dashboard, never a 500.
    let token = s.state.create_token(1, "again", None).await.unwrap();
    for next in [
        "%2Fdashboard%0D%0ASet-Cookie%3A%20x%3D1",
        "%2F%2Fevil.example%2F",
        "https%3A%2F%2Fevil.example",
        "%FF%FE",
    ] {
        let (status, headers, body) = post(
            &s.router,
            "/login",
            &format!("token={token}&next={next}"),
            &[],
        )
        .await;
        assert_eq!(status, 303, "{next}: {body}");
        assert_eq!(header(&headers, "location"), Some("/dashboard"), "{next}");
    }
    let (status, _, body) = oneshot(&s.router, "/login?next=%2Fdashboard%0D%0Ax", None).await;
    assert_eq!(status, 200, "{body}");
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_posts_are_refused_and_wrong_sign_ins_limited() {
    let s = site(
        "web-forged",
        AppOptions {
            trust_proxy: true,
            ..AppOptions::default()
        },
    )
    .await;
    // From another origin or site: 403, no cookie.
    for headers in [
        vec![("origin", "http://evil.example")],
        vec![("origin", "null")],
        vec![("referer", "http://evil.example/page")],
        vec![("sec-fetch-site", "cross-site")],
    ] {
        let (status, got, body) =
            post(&s.router, "/login", &format!("token={}", s.token), &headers).await;
        assert_eq!(status, 403, "{headers:?}: {body}");
        assert!(header(&got, "set-cookie").is_none(), "{headers:?}");
        let (status, _, _) = post(&s.router, "/logout", "", &headers).await;
        assert_eq!(status, 403, "sign-out from {headers:?}");
    }
    // Behind a trusted proxy over HTTPS: a Secure cookie and HSTS.
    let (status, got, _) = post(
        &s.router,
        "/login",
        &format!("token={}", s.token),
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "mttx.example"),
            ("origin", "https://mttx.example"),
            ("x-forwarded-for", "192.0.2.9"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert!(header(&got, "set-cookie").unwrap().contains("; Secure"));
    assert_eq!(
        header(&got, "strict-transport-security"),
        Some("max-age=31536000")
    );

    // 20 wrong sign-ins a minute from one client; the 21st gets 429 with Retry-After,
    // another client is not held back.
    let wrong = "token=mttx_wrong";
    let from = |ip: &'static str| vec![("x-forwarded-for", ip)];
    for i in 1..=mttx_api::dashboard::LOGINS_PER_MINUTE {
        let (status, _, body) = post(&s.router, "/login", wrong, &from("198.51.100.7")).await;
        assert_eq!(status, 401, "attempt {i}: {body}");
    }
    let (status, got, body) = post(&s.router, "/login", wrong, &from("198.51.100.7")).await;
    assert_eq!(status, 429, "{body}");
    let wait: u64 = header(&got, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(body.contains("too many sign-in attempts"), "{body}");
    let (status, _, _) = post(&s.router, "/login", wrong, &from("198.51.100.8")).await;
    assert_eq!(status, 401);
    let _ = std::fs::remove_dir_all(&s.dir);
}

/// Login CSRF in a real browser: a page on a second local origin posts a valid token to
/// the dashboard's sign-in form. The dashboard refuses it and the browser is not signed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_page_cannot_sign_a_browser_in() {
    let s = site("web-csrf", AppOptions::default()).await;
    let app = App::open(&s.facts, s.state.clone(), None, AppOptions::default())
        .await
        .unwrap();
    let (addr, _task) = mttx_api::serve("127.0.0.1:0".parse().unwrap(), mttx_api::app(app))
        .await
        .unwrap();
    let base = format!("http://{addr}");
    let attacker_page = format!(
        r#"<!doctype html><html><body onload="document.forms[0].submit()">
        <form method="post" action="{base}/login">
        <input name="token" value="{}"><input name="next" value="/dashboard"></form>
        </body></html>"#,
        s.token
    );
    let page = Arc::new(attacker_page);
    let attacker = Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html((*page).clone()) }
        }),
    );
    let (evil, _evil_task) = mttx_api::serve("127.0.0.1:0".parse().unwrap(), attacker)
        .await
        .unwrap();

    let driver = chromedriver();
    let c = browser(&driver).await;
    // The foreign page (another origin: localhost, another port) submits the form.
    c.goto(&format!("http://localhost:{}/", evil.port()))
        .await
        .unwrap();
    wait_for(&c, "#token").await;
    let shown = c.source().await.unwrap();
    assert!(shown.contains("sent from another site"), "{shown}");
    // The browser holds no session: the dashboard asks it to sign in.
    c.goto(&format!("{base}/dashboard")).await.unwrap();
    wait_for(&c, "#token").await;
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    // From the dashboard's own page, signing in works.
    sign_in(&c, &base, &s.token).await;
    wait_for(&c, "form[action='/logout']").await;
    assert!(c.find(Locator::Css("#token")).await.is_err());
    c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&s.dir);
}
