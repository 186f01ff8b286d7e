//! The weekly report to a chat: one POST of Slack's incoming-webhook JSON to the webhook's
//! URL, which is a secret (whoever holds it can post to the channel), so it comes from
//! `MTTX_WEBHOOK_URL` or a file, never from the command line.

use secrecy::{ExposeSecret as _, SecretString};

use super::Failure;

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

    /// Posts `body`: Ok, or why not ([`Failure`]): a connection that could not be made,
    /// 429 or 502–504 are worth another try; another 4xx says the URL or the message is
    /// wrong; a timeout or another 5xx may have come after the chat took the message, so
    /// whether it arrived is unknown.
    pub async fn post(&self, body: &serde_json::Value) -> Result<String, Failure> {
        let sent = self
            .client
            .post(self.url.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            // The error names the URL, which holds the secret: say only what went wrong.
            Err(e) if e.is_connect() => {
                return Err(Failure::Retry(format!(
                    "could not connect to the webhook at {}",
                    self.host
                )));
            }
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "broke off"
                };
                return Err(Failure::Unknown(format!(
                    "the request to the webhook at {} {what}",
                    self.host
                )));
            }
        };
        let status = response.status();
        let answer: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        let why = format!("the webhook at {} answered {status}: {answer}", self.host);
        match status.as_u16() {
            200..=299 => Ok(format!("{} answered {status}", self.host)),
            429 | 502..=504 => Err(Failure::Retry(why)),
            500..=599 => Err(Failure::Unknown(why)),
            _ => Err(Failure::Final(why)),
        }
    }
}
