//! The weekly report by email: a multipart message (plain text and HTML alternatives, the
//! CSV attached) sent over SMTP with lettre, upgrading to TLS with STARTTLS whenever the
//! server offers it (`smtp://`), demanding it (`smtp://…?tls=required`) or speaking TLS from
//! the start (`smtps://`).

use std::path::Path;

use anyhow::Context as _;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use secrecy::{ExposeSecret as _, SecretString};

use super::Failure;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// STARTTLS when the server offers it (`smtp://`).
    Opportunistic,
    /// STARTTLS or fail (`smtp://…?tls=required`).
    Required,
    /// TLS from the first byte (`smtps://`).
    Wrapper,
    /// Never TLS (`smtp://…?tls=none`), for a relay on the same host.
    None,
}

/// An SMTP server to send through, and the sender.
#[derive(Debug)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port` for messages.
    server: String,
}

/// `url` with whatever sits between `//` and `@` (a user and password) hidden.
fn redacted(url: &str) -> String {
    match (url.find("//"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => format!("{}//…{}", &url[..start], &url[at..]),
        _ => url.to_owned(),
    }
}

/// What `--smtp` says: the server, its port and how to secure the connection.
fn parse(url: &str) -> anyhow::Result<(String, u16, Security)> {
    let hint = "give smtp://HOST[:PORT] (STARTTLS when offered), smtp://HOST[:PORT]?tls=required, or smtps://HOST[:PORT]";
    let shown = redacted(url);
    let parsed = url::Url::parse(url)
        .map_err(|e| crate::cli::usage(format!("--smtp `{shown}`: {e}; {hint}")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(crate::cli::usage(
            "--smtp must not hold a user or password (a command line is not secret): give --smtp-user and MTTX_SMTP_PASSWORD or --smtp-password-file",
        ));
    }
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Err(crate::cli::usage(format!(
            "--smtp `{shown}` names no server; {hint}"
        )));
    };
    let tls = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let (security, port) = match (parsed.scheme(), tls.as_deref()) {
        ("smtp", None | Some("opportunistic")) => (Security::Opportunistic, 25),
        ("smtp", Some("required")) => (Security::Required, 587),
        ("smtp", Some("none")) => (Security::None, 25),
        ("smtps", None) => (Security::Wrapper, 465),
        _ => return Err(crate::cli::usage(format!("--smtp `{shown}`: {hint}"))),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok((host, parsed.port().unwrap_or(port), security))
}

impl Mailer {
    /// A mailer for the server at `url`, signing in as `user` with `password` when given,
    /// trusting the certificate authorities in `ca` (PEM) besides the system's.
    pub fn new(
        url: &str,
        from: Mailbox,
        user: Option<String>,
        password: Option<SecretString>,
        ca: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let (host, port, mut security) = parse(url)?;
        // A password never goes in clear: signing in needs STARTTLS (or TLS from the start).
        if user.is_some() {
            match security {
                Security::Opportunistic => security = Security::Required,
                Security::None => {
                    return Err(crate::cli::usage(
                        "--smtp …?tls=none with --smtp-user would send the password in clear: use smtp:// (STARTTLS) or smtps://",
                    ));
                }
                Security::Required | Security::Wrapper => {}
            }
        }
        let tls = || -> anyhow::Result<TlsParameters> {
            let mut params = TlsParameters::builder(host.clone());
            if let Some(ca) = ca {
                let pem = std::fs::read(ca)
                    .with_context(|| format!("--smtp-ca-file {}: cannot read it", ca.display()))?;
                let cert = Certificate::from_pem(&pem).with_context(|| {
                    format!("--smtp-ca-file {}: not a PEM certificate", ca.display())
                })?;
                params = params.add_root_certificate(cert);
            }
            params
                .build_rustls()
                .context("cannot set up TLS for the SMTP server")
        };
        let tls = match security {
            Security::Opportunistic => Tls::Opportunistic(tls()?),
            Security::Required => Tls::Required(tls()?),
            Security::Wrapper => Tls::Wrapper(tls()?),
            Security::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
            .port(port)
            .tls(tls)
            .timeout(Some(std::time::Duration::from_secs(60)));
        match (user, password) {
            (Some(user), Some(password)) => {
                builder = builder
                    .credentials(Credentials::new(user, password.expose_secret().to_owned()));
            }
            (Some(_), None) => {
                return Err(crate::cli::usage(
                    "--smtp-user is given but no password: set MTTX_SMTP_PASSWORD or give --smtp-password-file",
                ));
            }
            (None, Some(_)) => {
                return Err(crate::cli::usage(
                    "an SMTP password is given but no --smtp-user to sign in as",
                ));
            }
            (None, None) => {}
        }
        Ok(Self {
            transport: builder.build(),
            from,
            server: format!("{host}:{port}"),
        })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// The message to `to`: `subject`, `plain` and `html` as alternatives, `csv` attached
    /// as `file`, with the Message-ID `id` (the same for every try of one report, so that a
    /// mail system that sees it twice can tell).
    pub fn message(
        &self,
        to: &[Mailbox],
        subject: &str,
        id: &str,
        plain: String,
        html: String,
        (file, csv): (String, String),
    ) -> anyhow::Result<Message> {
        let domain = self.from.email.domain().to_owned();
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(format!("<{id}@{domain}>")));
        for mailbox in to {
            message = message.to(mailbox.clone());
        }
        let csv_type = ContentType::parse("text/csv; charset=utf-8")
            .map_err(|e| anyhow::anyhow!("the CSV content type: {e}"))?;
        message
            .multipart(
                MultiPart::mixed()
                    .multipart(MultiPart::alternative_plain_html(plain, html))
                    .singlepart(Attachment::new(file).body(csv, csv_type)),
            )
            .context("cannot build the weekly mail")
    }

    /// Sends `message`: Ok with the server's answer, or why not ([`Failure`]): a
    /// temporary refusal (4xx) or a connection that could not be made is worth another try;
    /// a permanent refusal (an unknown recipient, a bad password) is not; a timeout or a
    /// broken connection may have come after the server took the message, so whether it
    /// arrived is unknown.
    pub async fn send(&self, message: Message) -> Result<String, Failure> {
        match self.transport.send(message).await {
            Ok(response) => Ok(response.message().collect::<Vec<&str>>().join(" ")),
            Err(e) => {
                let why = format!("{} at {}", e, self.server);
                let not_connected = e.to_string().starts_with("Connection error")
                    || std::error::Error::source(&e)
                        .and_then(|s| s.downcast_ref::<std::io::Error>())
                        .is_some_and(|io| {
                            matches!(
                                io.kind(),
                                std::io::ErrorKind::ConnectionRefused
                                    | std::io::ErrorKind::HostUnreachable
                                    | std::io::ErrorKind::NetworkUnreachable
                                    | std::io::ErrorKind::AddrNotAvailable
                            )
                        });
                Err(if e.is_transient() || not_connected {
                    Failure::Retry(why)
                } else if e.is_permanent() || e.is_tls() || e.is_client() {
                    Failure::Final(why)
                } else {
                    Failure::Unknown(why)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smtp_url_says_the_server_and_its_security() {
        assert_eq!(
            parse("smtp://mail.example.com").unwrap(),
            ("mail.example.com".into(), 25, Security::Opportunistic)
        );
        assert_eq!(
            parse("smtp://mail.example.com:2525?tls=required").unwrap(),
            ("mail.example.com".into(), 2525, Security::Required)
        );
        assert_eq!(
            parse("smtps://mail.example.com").unwrap(),
            ("mail.example.com".into(), 465, Security::Wrapper)
        );
        let e = parse("smtp://me:secret@mail.example.com")
            .unwrap_err()
            .to_string();
        assert!(e.contains("MTTX_SMTP_PASSWORD"), "{e}");
        let e = parse("http://mail.example.com").unwrap_err().to_string();
        assert!(e.contains("smtps://"), "{e}");
        let e = parse("smtp://me:secret@mail.example.com:99999")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }
}
