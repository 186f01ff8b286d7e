//! A real headless Chromium (Debian's `chromium` and `chromedriver`) driven through
//! WebDriver, and the steps the dashboard's tests share: sign in and out, find, wait,
//! run a script, press Tab, save a screenshot.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// chromedriver on a free port, stopped when dropped.
pub(crate) struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn chromedriver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is not installed: `apt-get install -y chromium chromium-driver` (scripts/test.sh does it)");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver { child, port }
}

pub(crate) async fn browser(driver: &Driver) -> Client {
    browser_with(driver, &[]).await
}

/// A browser started with `extra` command-line switches besides the usual ones.
pub(crate) async fn browser_with(driver: &Driver, extra: &[&str]) -> Client {
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
    ];
    args.extend_from_slice(extra);
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": args,
        },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("cannot start headless Chromium through chromedriver")
}

pub(crate) async fn text_of(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap(),
        Err(e) => panic!("no `{css}` on {}: {e}", c.current_url().await.unwrap()),
    }
}

/// Waits for `css` on the page; says where the browser is instead if it never shows.
pub(crate) async fn wait_for(c: &Client, css: &str) {
    let start = Instant::now();
    while c.find(Locator::Css(css)).await.is_err() {
        if start.elapsed() > Duration::from_secs(20) {
            let url = c.current_url().await.unwrap();
            let body = js(c, "return document.body.innerText").await;
            panic!("no `{css}` on {url}: {body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn tab(c: &Client) {
    c.perform_actions(
        KeyActions::new("keyboard".into())
            .then(KeyAction::Down {
                value: Key::Tab.into(),
            })
            .then(KeyAction::Up {
                value: Key::Tab.into(),
            }),
    )
    .await
    .unwrap();
}

pub(crate) async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Types the token into the sign-in form and presses Enter; returns once the next page
/// (whichever it is) has loaded.
pub(crate) async fn submit_token(c: &Client, token: &str) {
    js(c, "window.mttxOldPage = true; return null").await;
    let field = c.find(Locator::Id("token")).await.unwrap();
    field
        .send_keys(&format!("{token}{}", char::from(Key::Enter)))
        .await
        .unwrap();
    let start = Instant::now();
    while js(
        c,
        "return window.mttxOldPage === undefined && document.readyState === 'complete'",
    )
    .await
        != json!(true)
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no page after signing in"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    submit_token(c, token).await;
}

pub(crate) async fn sign_out(c: &Client) {
    c.find(Locator::Css("form[action='/logout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "#token").await;
}

pub(crate) fn save(path: &Path, png: &[u8]) {
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "not a screenshot"
    );
    std::fs::write(path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}
