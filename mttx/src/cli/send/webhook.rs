//! The weekly report to a chat: one POST of Slack's incoming-webhook JSON to the webhook's
//! URL, which is a secret (whoever holds it can post to the channel), so it comes from
//! `MTTX_WEBHOOK_URL` or a file, never from the command line.

use secrecy::{ExposeSecret as _, SecretString};

/// A chat's incoming webhook.
#[derive(Debug)]
pub struct Webhook {
    client: reqwest::Client,
    url: SecretString,
    /// The URL's host, for messages (the rest of it is the secret).
    host: String,
}

impl Webhook {
    pub fn new(url: SecretString) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url.expose_secret().trim()).map_err(|e| {
            anyhow::anyhow!(
                "the webhook URL (MTTX_WEBHOOK_URL or --webhook-url-file) is not a URL: {e}"
            )
        })?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "https" | "http"),
            "the webhook URL must be http(s)://…, not {}://",
            parsed.scheme()
        );
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("mttx/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            url: parsed.to_string().into(),
            host,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Posts `body`: Ok, or the error and whether trying again may help (a refused
    /// connection, a timeout, 429 or a 5xx; not another 4xx, which says the URL or the
    /// message is wrong).
    pub async fn post(&self, body: &serde_json::Value) -> Result<String, (String, bool)> {
        let text = body.to_string();
        let sent = self
            .client
            .post(self.url.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(text)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            // The error names the URL, which holds the secret: say only what went wrong.
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "could not connect"
                } else {
                    "the request failed"
                };
                return Err((format!("webhook at {}: {what}", self.host), true));
            }
        };
        let status = response.status();
        let answer = response.text().await.unwrap_or_default();
        let answer: String = answer.chars().take(200).collect();
        if status.is_success() {
            Ok(format!("{} answered {status}", self.host))
        } else {
            let retry = status.as_u16() == 429 || status.is_server_error();
            Err((
                format!("webhook at {} answered {status}: {answer}", self.host),
                retry,
            ))
        }
    }
}
