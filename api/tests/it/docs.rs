//! `/docs`, the API reference, in a real headless Chromium cut off from every host but
//! loopback: it renders from the binary's own copy of Swagger UI, and "Try it out" with a
//! token returns the same answer as the API.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use mttx_api::{App, AppOptions};
use serde_json::{Value, json};

use crate::browser::{browser_with, chromedriver, js, wait_for};
use crate::common::{get, golden_folded};

/// `v` with every number as a float.
fn floats(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(items) => Value::Array(items.iter().map(floats).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), floats(v))).collect()),
        other => other.clone(),
    }
}

/// Clicks the first element matching `css`.
async fn click(c: &Client, css: &str) {
    wait_for(c, css).await;
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reference_renders_offline_and_tries_a_call_with_a_token() {
    let (dir, _, facts, state) = golden_folded("docs-page").await;
    let token = state.create_token(1, "docs", None).await.unwrap();
    let app = App::open(&facts, state, None, AppOptions::default())
        .await
        .unwrap();
    let (addr, _task) = mttx_api::serve("127.0.0.1:0".parse().unwrap(), mttx_api::app(app))
        .await
        .unwrap();
    let base = format!("http://{addr}");
    let driver = chromedriver();
    // No network: every name but loopback fails to resolve.
    let c = browser_with(
        &driver,
        &["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
    )
    .await;
    c.goto(&format!("{base}/docs")).await.unwrap();
    wait_for(&c, ".swagger-ui .info .title").await;
    let title = c
        .find(Locator::Css(".swagger-ui .info .title"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(title.contains("mttx"), "{title}");
    // Everything the page loaded came from this server.
    let loaded = js(
        &c,
        "return performance.getEntriesByType('resource').map(e => e.name)",
    )
    .await;
    let loaded: Vec<String> = serde_json::from_value(loaded).unwrap();
    assert!(
        loaded
            .iter()
            .any(|u| u.ends_with("/docs/assets/swagger-ui-bundle.js")),
        "{loaded:?}"
    );
    assert!(
        loaded.iter().all(|u| u.starts_with(&base)),
        "only this server: {loaded:?}"
    );

    // Authorize with the token, then try the team report.
    click(&c, ".auth-wrapper .authorize").await;
    wait_for(&c, ".modal-ux input").await;
    c.find(Locator::Css(".modal-ux input"))
        .await
        .unwrap()
        .send_keys(&token)
        .await
        .unwrap();
    click(&c, ".modal-ux .auth-btn-wrapper .authorize").await;
    click(&c, ".modal-ux .btn-done").await;
    click(
        &c,
        ".opblock-summary-path[data-path='/api/v1/reports/incidents']",
    )
    .await;
    let fill = |name: &'static str, value: &'static str| {
        let c = c.clone();
        async move {
            let css = format!("tr[data-param-name='{name}'] input");
            wait_for(&c, &css).await;
            let field = c.find(Locator::Css(&css)).await.unwrap();
            field.clear().await.unwrap();
            field.send_keys(value).await.unwrap();
        }
    };
    fill("from", "2026-10-26").await;
    fill("to", "2026-11-02").await;
    fill("tz", "Europe/Berlin").await;
    click(&c, ".opblock.is-open .execute").await;
    let status_css = ".opblock.is-open .live-responses-table tbody .response-col_status";
    wait_for(&c, status_css).await;
    let start = Instant::now();
    let body = loop {
        let shown = js(
            &c,
            "const b = document.querySelector('.opblock.is-open .live-responses-table .response-col_description pre'); return b ? b.innerText : null",
        )
        .await;
        if let Some(text) = shown.as_str()
            && let Ok(v) = serde_json::from_str::<Value>(text)
        {
            break v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no answer shown: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status = c
        .find(Locator::Css(status_css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(status.trim(), "200", "{body}");
    let (code, api) = tokio::task::spawn_blocking(move || {
        get(
            addr,
            "/api/v1/reports/incidents?from=2026-10-26&to=2026-11-02&tz=Europe/Berlin",
            Some(&token),
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 200);
    // The page shows the API's answer (its JSON printer writes 6.0 as 6).
    assert_eq!(floats(&body["total"]), floats(&api["total"]));
    assert_eq!(
        floats(&body["total"]["metrics"]["incident_count"]["value"]),
        json!(6.0)
    );
    c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
