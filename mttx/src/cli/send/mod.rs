//! `mttx report send`: each team's weekly report by email (SMTP) and/or to a chat webhook,
//! once now or on a weekly schedule (`--every "mon 08:00"`) in the account's time zone.
//!
//! Every delivery (account, team, week, channel) is claimed in the state database before it
//! is sent and marked sent or failed after it ([`mttx_state::Claim`]): a failed send is
//! tried again (at once with backoff, then on the schedule's next round), a sent one is
//! never sent again, and a schedule missed while mttx was down sends the last slot's week
//! once on start — not one mail per missed slot.

mod mail;
mod schedule;
mod webhook;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use backon::{ExponentialBuilder, Retryable as _};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use lettre::message::Mailbox;
use mttx_api::weekly::{self, Format, Refusal, Weekly};
use mttx_etl::Shutdown;
use mttx_replica::{Directory, Kind};
use mttx_state::{Claim, Delivery, Ended, State};
use secrecy::SecretString;

use self::mail::Mailer;
use self::schedule::{Clock, Every, parse_every, week_of_slot};
use self::webhook::Webhook;
use super::report::team_id;
use super::{Places, shutdown_on_signal, usage};

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The account whose teams get their reports.
    #[arg(long)]
    account: i64,
    /// A team, by id or name; repeat for several (default: the teams --to names, or, when it
    /// names none, every team with incidents in the week; the whole account when it has no
    /// teams, as a GoAlert instance).
    #[arg(long = "team", value_name = "TEAM")]
    teams: Vec<String>,
    /// The ISO week to send, such as 2026-W44 (default: the last complete week in the time
    /// zone).
    #[arg(long, value_parser = parse_week, conflicts_with = "every")]
    week: Option<NaiveDate>,
    /// Send on a schedule, such as "mon 08:00": each slot sends the week before it, in the
    /// time zone. Runs until stopped; a slot missed while it was not running is sent once
    /// on start.
    #[arg(long, value_parser = parse_every)]
    every: Option<Every>,
    /// Send once and exit, even where the configuration file sets `every` (as does
    /// --week).
    #[arg(long)]
    once: bool,
    /// IANA time zone of the weeks and the schedule (default: the account's own, from the
    /// replica at --source).
    #[arg(long, value_parser = super::parse_zone)]
    tz: Option<Tz>,
    /// A recipient of a team's mail, as TEAM=ADDRESS (TEAM: an id, a name, or * for every
    /// team); repeat for more. In the configuration file, a table:
    /// `[report.send.to]` with `"Payments" = ["lead@example.com"]`.
    #[arg(long = "to", value_name = "TEAM=ADDRESS", value_parser = parse_recipient)]
    to: Vec<Recipient>,
    /// The SMTP server: smtp://HOST[:PORT] (STARTTLS whenever the server offers it),
    /// smtp://HOST[:PORT]?tls=required, or smtps://HOST[:PORT] (TLS from the start).
    #[arg(long, env = "MTTX_SMTP", value_name = "URL")]
    smtp: Option<String>,
    /// The sender, such as "mttx <mttx@example.com>".
    #[arg(long, env = "MTTX_MAIL_FROM", value_parser = parse_mailbox)]
    from: Option<Mailbox>,
    /// The user to sign in to the SMTP server as; the password comes from
    /// MTTX_SMTP_PASSWORD or --smtp-password-file, never from the command line.
    #[arg(long, env = "MTTX_SMTP_USER")]
    smtp_user: Option<String>,
    /// A file holding the SMTP password (instead of MTTX_SMTP_PASSWORD).
    #[arg(long, value_name = "FILE")]
    smtp_password_file: Option<PathBuf>,
    /// Certificate authorities (PEM) to trust for the SMTP server's TLS besides the
    /// system's, for a relay with an internal certificate.
    #[arg(long, value_name = "FILE")]
    smtp_ca_file: Option<PathBuf>,
    /// A file holding the chat's incoming-webhook URL (instead of MTTX_WEBHOOK_URL). The URL
    /// is a secret: whoever holds it can post to the channel.
    #[arg(long, value_name = "FILE")]
    webhook_url_file: Option<PathBuf>,
    /// Where people open the dashboard (https://mttx.example.com): the messages link to
    /// the team's week there.
    #[arg(long, env = "MTTX_DASHBOARD_URL", value_parser = parse_base_url)]
    dashboard_url: Option<url::Url>,
    /// Send again what was sent already, or may have been (a send interrupted or timed out
    /// mid-way); with --every, only in the first round.
    #[arg(long)]
    resend: bool,
    /// Tries of one send (waiting 1 s, 2 s, 4 s … between them) before it counts as failed.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    attempts: u32,
    /// With --every: minutes between rounds that try failed sends again, until the next slot.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u16).range(1..=1440))]
    retry_minutes: u16,
    /// Pretend the clock reads this instant at start (RFC 3339), and runs on from there: for
    /// trying a schedule out.
    #[arg(long, hide = true, value_parser = parse_instant)]
    now: Option<DateTime<Utc>>,
}

/// `--to TEAM=ADDRESS`.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// None: every team (`*`).
    team: Option<String>,
    mailbox: Mailbox,
}

fn parse_recipient(s: &str) -> Result<Recipient, String> {
    let Some((team, address)) = s.split_once('=') else {
        return Err(format!(
            "`{s}` is not TEAM=ADDRESS (such as Payments=lead@example.com, 7=lead@example.com or *=ops@example.com)"
        ));
    };
    let team = team.trim();
    if team.is_empty() {
        return Err(format!(
            "`{s}` names no team before `=` (give an id, a name or *)"
        ));
    }
    Ok(Recipient {
        team: (team != "*").then(|| team.to_owned()),
        mailbox: parse_mailbox(address.trim())?,
    })
}

fn parse_mailbox(s: &str) -> Result<Mailbox, String> {
    s.parse::<Mailbox>()
        .map_err(|e| format!("`{s}` is not a mail address ({e}); write lead@example.com or \"Lead <lead@example.com>\""))
}

fn parse_week(s: &str) -> Result<NaiveDate, String> {
    weekly::parse_week(s).map_err(|e| e.to_string())
}

fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("`{s}` is not an RFC 3339 instant such as 2026-11-02T08:00:00+01:00: {e}")
        })
}

fn parse_base_url(s: &str) -> Result<url::Url, String> {
    let mut url = url::Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{s}` is not an http(s) URL"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// A secret from `file` (trimmed), else from the environment variable `var`; None when
/// neither holds one.
fn secret(file: Option<&Path>, var: &str, flag: &str) -> anyhow::Result<Option<SecretString>> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("{flag} {}: cannot read it", path.display()))?,
        None => match std::env::var(var) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        },
    };
    let text = text.trim().to_owned();
    anyhow::ensure!(
        !text.is_empty(),
        "{} is empty",
        file.map_or(var.to_owned(), |p| format!("{flag} {}", p.display()))
    );
    Ok(Some(text.into()))
}

/// Why a send did not go through, and what may be done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It did not arrive, and trying again may help (a temporary refusal, no connection).
    Retry(String),
    /// It did not arrive, and trying again will not help until something is fixed.
    Final(String),
    /// It may have arrived (a timeout after the message was handed over): not tried again.
    Unknown(String),
}

impl Failure {
    fn why(&self) -> &str {
        match self {
            Failure::Retry(w) | Failure::Final(w) | Failure::Unknown(w) => w,
        }
    }
}

/// Everything a round of sends needs.
#[derive(Debug)]
struct Sender<'a> {
    places: &'a Places,
    account: i64,
    names: Directory,
    source: Option<mttx_replica::Source>,
    tz: Tz,
    state: State,
    mailer: Option<Mailer>,
    webhook: Option<Webhook>,
    /// Each team's recipients (None: every team's).
    to: BTreeMap<Option<i64>, Vec<Mailbox>>,
    /// The teams asked for (None: the choice of [`Sender::teams`]).
    teams: Option<Vec<i64>>,
    dashboard: Option<url::Url>,
    attempts: u32,
    shutdown: Shutdown,
}

/// How a round went.
#[derive(Debug, Default)]
struct Round {
    sent: usize,
    failed: Vec<String>,
    /// Stopped by a signal before the round's end.
    stopped: bool,
}

impl Sender<'_> {
    /// The teams to send to in the week of `monday`: those asked for, else those --to names,
    /// else every team with incidents in the week (None: the whole account, which has no
    /// teams).
    async fn teams(
        &self,
        engine: &mttx_query::Engine,
        monday: NaiveDate,
    ) -> anyhow::Result<Vec<Option<i64>>> {
        if let Some(teams) = &self.teams {
            return Ok(teams.iter().copied().map(Some).collect());
        }
        let named: Vec<Option<i64>> = self.to.keys().filter(|k| k.is_some()).copied().collect();
        if !named.is_empty() {
            return Ok(named);
        }
        let has_teams = !self.names.named(Kind::Team).is_empty();
        let teams = weekly::teams_of_week(engine, self.account, monday, self.tz).await?;
        Ok(if teams.is_empty() && !has_teams {
            vec![None]
        } else {
            teams.into_iter().map(Some).collect()
        })
    }

    /// The dashboard's page of `team`'s week.
    fn link(&self, report: &Weekly) -> Option<String> {
        let mut url = self.dashboard.as_ref()?.join("dashboard").ok()?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("week", &report.week)
                .append_pair("tz", &report.period.tz);
            if let Some(team) = report.team_id {
                q.append_pair("team", &team.to_string());
            }
        }
        Some(url.to_string())
    }

    /// Sends every team's report of the week of `monday` that has not gone out (with
    /// `again`, also what has or may have).
    async fn round(&self, monday: NaiveDate, again: bool) -> anyhow::Result<Round> {
        let engine = mttx_api::open_served(&self.state, &self.places.facts)
            .await?
            .with_min_sample(self.places.min_sample);
        let mut round = Round::default();
        for team in self.teams(&engine, monday).await? {
            if round.stopped {
                break;
            }
            let report = match weekly::weekly(
                &engine,
                &self.names,
                self.source.as_ref(),
                self.account,
                team,
                monday,
                self.tz,
            )
            .await
            {
                Ok(r) => r,
                Err(mttx_api::Error::Refused(r @ Refusal::UnknownTeam { .. })) => {
                    tracing::info!("nothing to send: {r}");
                    continue;
                }
                Err(e) => {
                    let whose =
                        team.map_or(format!("account {}", self.account), |t| format!("team {t}"));
                    let why = super::said(&e);
                    tracing::error!(
                        "cannot make the report of {} for {whose}: {why}",
                        weekly::iso(monday)
                    );
                    round.failed.push(format!("{whose}: {why}"));
                    continue;
                }
            };
            let whose = match (&report.team_name, team) {
                (Some(name), Some(id)) => format!("{name} (team {id})"),
                _ => format!("{} (account {})", report.account_name, self.account),
            };
            if let Some(mailer) = &self.mailer {
                let to = self.recipients(team);
                if to.is_empty() {
                    tracing::warn!(
                        "no recipients for {whose}: give --to {}=ADDRESS",
                        team.map_or("*".to_owned(), |t| t.to_string())
                    );
                } else {
                    let message = self.mail(mailer, &report, &to);
                    match message {
                        Ok(message) => {
                            let detail = format!(
                                "to {} via {}",
                                to.iter()
                                    .map(|m| m.email.to_string())
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                mailer.server()
                            );
                            self.deliver(&mut round, &report, &whose, "email", again, || async {
                                mailer
                                    .send(message.clone())
                                    .await
                                    .map(|answer| format!("{detail}: {answer}"))
                            })
                            .await?;
                        }
                        Err(e) => {
                            let why = super::message(&e);
                            tracing::error!("cannot write the mail of {whose}: {why}");
                            round.failed.push(format!("{whose} by email: {why}"));
                        }
                    }
                }
            }
            if let Some(webhook) = &self.webhook
                && !round.stopped
            {
                let body = weekly::message::chat(&report, self.link(&report).as_deref());
                self.deliver(&mut round, &report, &whose, "webhook", again, || async {
                    webhook.post(&body).await
                })
                .await?;
            }
        }
        Ok(round)
    }

    /// `team`'s recipients and everyone's, each address once.
    fn recipients(&self, team: Option<i64>) -> Vec<Mailbox> {
        let mut to: Vec<Mailbox> = Vec::new();
        let keys: &[Option<i64>] = if team.is_some() {
            &[team, None]
        } else {
            &[None]
        };
        for key in keys {
            for m in self.to.get(key).into_iter().flatten() {
                if !to.iter().any(|t| t.email == m.email) {
                    to.push(m.clone());
                }
            }
        }
        to
    }

    /// The weekly mail of `report` to `to`.
    fn mail(
        &self,
        mailer: &Mailer,
        report: &Weekly,
        to: &[Mailbox],
    ) -> anyhow::Result<lettre::Message> {
        let link = self.link(report);
        let mut plain = weekly::render(report, Format::Md)?;
        let mut html = weekly::render(report, Format::Html)?;
        if let Some(link) = &link {
            plain = format!("Open the dashboard: {link}\n\n{plain}");
            let escaped = link.replace('&', "&amp;").replace('"', "&quot;");
            html = html.replacen(
                "<body>",
                &format!("<body>\n<p><a href=\"{escaped}\">Open the dashboard</a></p>"),
                1,
            );
        }
        let csv = weekly::render(report, Format::Csv)?;
        let slug: String = report
            .team_name
            .as_deref()
            .unwrap_or(&report.account_name)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let id = format!(
            "mttx-weekly.{}.{}.{}",
            report.account_id,
            report
                .team_id
                .map_or("account".to_owned(), |t| t.to_string()),
            report.week
        );
        mailer.message(
            to,
            &weekly::message::subject(report),
            &id,
            plain,
            html,
            (format!("mttx-weekly-{slug}-{}.csv", report.week), csv),
        )
    }

    /// Claims the delivery of `report` by `channel`, sends it with `send` (tried again with
    /// backoff while that may help), and records how it ended. A stop signal ends the
    /// backoff: the delivery is recorded failed (nothing was in flight) or, when it came
    /// mid-send, unknown.
    async fn deliver<F, Fut>(
        &self,
        round: &mut Round,
        report: &Weekly,
        whose: &str,
        channel: &str,
        again: bool,
        send: F,
    ) -> anyhow::Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<String, Failure>>,
    {
        let d = Delivery {
            account_id: report.account_id,
            team_id: report.team_id,
            week: &report.week,
            channel,
        };
        let what = format!("{} of {whose} by {channel}", report.week);
        match self.state.claim_delivery(d, again).await? {
            Claim::Claimed { attempt } => {
                tracing::info!(attempt, "sending {what}");
                let in_flight = std::cell::Cell::new(false);
                let backoff = ExponentialBuilder::default()
                    .with_min_delay(Duration::from_secs(1))
                    .with_max_delay(Duration::from_secs(60))
                    .with_max_times(self.attempts.saturating_sub(1) as usize);
                let tries = (|| async {
                    in_flight.set(true);
                    let sent = send().await;
                    in_flight.set(false);
                    sent
                })
                .retry(backoff)
                .when(|f| matches!(f, Failure::Retry(_)))
                .notify(|f, after| {
                    tracing::warn!(
                        "sending {what} failed ({}); trying again in {after:?}",
                        f.why()
                    );
                });
                let sent = tokio::select! {
                    sent = tries => sent,
                    () = self.shutdown.cancelled() => {
                        round.stopped = true;
                        Err(if in_flight.get() {
                            Failure::Unknown("stopped while sending".to_owned())
                        } else {
                            Failure::Final("stopped before it was sent".to_owned())
                        })
                    }
                };
                match sent {
                    Ok(detail) => {
                        self.state.finish_delivery(d, Ended::Sent, &detail).await?;
                        round.sent += 1;
                        println!("sent {what}: {detail}");
                    }
                    Err(Failure::Unknown(why)) => {
                        self.state.finish_delivery(d, Ended::Unknown, &why).await?;
                        tracing::error!(
                            "{what}: {why}; it may have arrived, so it is not sent again (--resend sends it)"
                        );
                        round
                            .failed
                            .push(format!("{whose} by {channel}: {why} (may have arrived)"));
                    }
                    Err(f) => {
                        self.state
                            .finish_delivery(d, Ended::Failed, f.why())
                            .await?;
                        tracing::error!("sending {what} failed: {}", f.why());
                        round
                            .failed
                            .push(format!("{whose} by {channel}: {}", f.why()));
                    }
                }
            }
            Claim::Sent { at, detail } => {
                println!(
                    "already sent {what} at {}{} (--resend sends it again)",
                    at.format("%Y-%m-%d %H:%M UTC"),
                    detail.map(|d| format!(", {d}")).unwrap_or_default()
                );
            }
            Claim::Interrupted { since, detail } => {
                tracing::warn!(
                    "{what}: a send began at {} and did not tell whether it arrived ({}); not sent again, --resend sends it",
                    since.format("%Y-%m-%d %H:%M UTC"),
                    detail
                        .as_deref()
                        .unwrap_or("another mttx sending it now, or one stopped mid-send")
                );
            }
        }
        Ok(())
    }

    /// Says which deliveries of weeks before `monday` never went out (a schedule moves on to
    /// the next week; these wait for a `report send --week`).
    async fn report_unsent(&self, monday: NaiveDate) -> anyhow::Result<()> {
        let week = weekly::iso(monday);
        for u in self.state.unsent_deliveries(self.account).await? {
            if u.week >= week {
                continue;
            }
            tracing::warn!(
                "{} of {} by {} was not sent ({}: {}); `mttx report send --account {} --week {}{}` sends it",
                u.week,
                u.team_id
                    .map_or(format!("account {}", self.account), |t| format!("team {t}")),
                u.channel,
                u.status,
                u.detail.as_deref().unwrap_or("no reason recorded"),
                self.account,
                u.week,
                u.team_id
                    .map(|t| format!(" --team {t}"))
                    .unwrap_or_default()
            );
        }
        Ok(())
    }
}

pub async fn run(places: &Places, args: SendArgs) -> anyhow::Result<()> {
    let mailer = match &args.smtp {
        Some(url) => {
            let from = args.from.clone().ok_or_else(|| {
                usage("--smtp needs --from (or MTTX_MAIL_FROM): the sender, such as \"mttx <mttx@example.com>\"")
            })?;
            if args.to.is_empty() {
                return Err(usage(
                    "no recipients: give --to TEAM=ADDRESS, or a [report.send.to] table in the configuration file",
                ));
            }
            let password = secret(
                args.smtp_password_file.as_deref(),
                "MTTX_SMTP_PASSWORD",
                "--smtp-password-file",
            )?;
            Some(Mailer::new(
                url,
                from,
                args.smtp_user.clone(),
                password,
                args.smtp_ca_file.as_deref(),
            )?)
        }
        None if !args.to.is_empty() => {
            return Err(usage(
                "recipients are given (--to) but no SMTP server to send through: give --smtp or MTTX_SMTP",
            ));
        }
        None => None,
    };
    let webhook = secret(
        args.webhook_url_file.as_deref(),
        "MTTX_WEBHOOK_URL",
        "--webhook-url-file",
    )?
    .map(Webhook::new)
    .transpose()?;
    if mailer.is_none() && webhook.is_none() {
        return Err(usage(
            "nowhere to send: give --smtp (with --from and --to) for email, and/or a chat webhook in MTTX_WEBHOOK_URL or --webhook-url-file",
        ));
    }
    let (names, source) = super::report::directory(places, args.account).await?;
    let tz = super::report::zone(args.tz, &names);
    let mut to: BTreeMap<Option<i64>, Vec<Mailbox>> = BTreeMap::new();
    for r in &args.to {
        let team = r.team.as_deref().map(|t| team_id(&names, t)).transpose()?;
        to.entry(team).or_default().push(r.mailbox.clone());
    }
    let teams = if args.teams.is_empty() {
        None
    } else {
        Some(
            args.teams
                .iter()
                .map(|t| team_id(&names, t))
                .collect::<anyhow::Result<Vec<_>>>()?,
        )
    };
    let sender = Sender {
        places,
        account: args.account,
        names,
        source,
        tz,
        state: places.open_state().await?,
        mailer,
        webhook,
        to,
        teams,
        dashboard: args.dashboard_url.clone(),
        attempts: args.attempts,
        shutdown: shutdown_on_signal("finishing the send under way"),
    };
    if let Some(m) = &sender.mailer {
        tracing::info!("mail goes through {}", m.server());
    }
    if let Some(w) = &sender.webhook {
        tracing::info!("chat messages go to the webhook at {}", w.host());
    }
    let clock = Clock::starting_at(args.now);
    // --week or --once on the command line send once, whatever the file's `every` says.
    let every = args.every.filter(|_| args.week.is_none() && !args.once);
    let Some(every) = every else {
        let monday = args.week.unwrap_or_else(|| week_of_slot(clock.now(), tz));
        let round = sender.round(monday, args.resend).await?;
        if !round.failed.is_empty() {
            anyhow::bail!(
                "{} send(s) of {} did not go through; running the same command again tries the failed ones again (what was sent is not sent twice):\n  {}",
                round.failed.len(),
                weekly::iso(monday),
                round.failed.join("\n  ")
            );
        }
        if round.sent == 0 && !round.stopped {
            println!("nothing new to send for {}", weekly::iso(monday));
        }
        return Ok(());
    };
    let retry = chrono::Duration::minutes(i64::from(args.retry_minutes));
    tracing::info!(
        "sending every {every} ({tz}); the next slot is {}",
        every.next(clock.now(), tz)
    );
    let mut again = args.resend;
    // The week earlier unsent deliveries were last listed for: once on start, once a slot.
    let mut listed: Option<NaiveDate> = None;
    loop {
        let now = clock.now();
        let slot = every.last(now, tz);
        let monday = week_of_slot(slot, tz);
        let next = every.next(now, tz);
        if listed != Some(monday) {
            sender.report_unsent(monday).await?;
            listed = Some(monday);
        }
        let retry_soon = match sender.round(monday, again).await {
            Ok(round) if round.stopped => return Ok(()),
            Ok(round) if round.failed.is_empty() => false,
            Ok(round) => {
                tracing::warn!(
                    "{} send(s) of {} did not go through; trying the failed ones again in {} minutes",
                    round.failed.len(),
                    weekly::iso(monday),
                    args.retry_minutes
                );
                true
            }
            Err(e) => {
                tracing::error!(
                    "cannot send the reports of {}: {}; trying again in {} minutes",
                    weekly::iso(monday),
                    super::message(&e),
                    args.retry_minutes
                );
                true
            }
        };
        again = false;
        let until = if retry_soon {
            (now + retry).min(next)
        } else {
            next
        };
        let wait = (until - clock.now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = sender.shutdown.cancelled() => return Ok(()),
        }
    }
}
