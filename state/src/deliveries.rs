//! `report_deliveries`: the weekly reports `mttx report send` has sent, one row per account,
//! team, ISO week and channel. A send first claims its row (`sending`), then marks it `sent`
//! or `failed`: a failed send is claimed again and retried, a sent one is never claimed
//! again (unless resent on purpose), and a row a crash left `sending` — or one whose send
//! ended without telling whether it arrived (`unknown`: a timeout after the message went
//! out) — is reported rather than sent a second time.

use chrono::{DateTime, Utc};

use crate::dialect::dialect;
use crate::{Result, State, err};

/// One delivery: which report, and how it goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery<'a> {
    pub account_id: i64,
    /// None: the whole account's report.
    pub team_id: Option<i64>,
    /// ISO week, e.g. 2026-W44.
    pub week: &'a str,
    /// `email` or `webhook`.
    pub channel: &'a str,
}

impl Delivery<'_> {
    fn team(&self) -> i64 {
        self.team_id.unwrap_or(-1)
    }
}

/// What claiming a delivery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This process sends it; `attempt` counts from 1 over every run.
    Claimed { attempt: i32 },
    /// It was sent at `at` (`detail`: what the send recorded, e.g. the recipients).
    Sent {
        at: DateTime<Utc>,
        detail: Option<String>,
    },
    /// A send began at `since` and either never recorded its end (a crash, or another
    /// process sending it right now) or ended not knowing whether it arrived (`detail`
    /// says why).
    Interrupted {
        since: DateTime<Utc>,
        detail: Option<String>,
    },
}

/// How a claimed delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Sent,
    /// It did not go out: the next claim sends it again.
    Failed,
    /// It may have gone out (a timeout after the message was handed over): not sent again
    /// unless asked.
    Unknown,
}

impl Ended {
    fn status(self) -> &'static str {
        match self {
            Ended::Sent => "sent",
            Ended::Failed => "failed",
            Ended::Unknown => "unknown",
        }
    }
}

/// A delivery that has not gone out, as [`State::unsent_deliveries`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsent {
    pub team_id: Option<i64>,
    pub week: String,
    pub channel: String,
    /// `failed`, `unknown` or `sending`.
    pub status: String,
    pub detail: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A delivery's row as [`State::claim_delivery`] reads it: status, updated at, sent at and
/// detail.
type Row = (String, DateTime<Utc>, Option<DateTime<Utc>>, Option<String>);

/// A row of [`State::unsent_deliveries`]: team, week, channel, status, detail, updated at.
type UnsentRow = (i64, String, String, String, Option<String>, DateTime<Utc>);

impl State {
    /// Claims `d` for sending: a delivery never tried, or one that failed; with `again`,
    /// also one that was sent or interrupted.
    #[tracing::instrument(skip_all, fields(account = d.account_id, team = d.team_id, week = d.week, channel = d.channel), err)]
    pub async fn claim_delivery(&self, d: Delivery<'_>, again: bool) -> Result<Claim> {
        let claim = dialect(
            &self.pool,
            "INSERT INTO report_deliveries (account_id, team_id, week, channel, status, attempts, updated_at) \
             VALUES ($1, $2, $3, $4, 'sending', 1, {now}) \
             ON CONFLICT (account_id, team_id, week, channel) DO UPDATE SET \
             status = 'sending', attempts = report_deliveries.attempts + 1, updated_at = {now} \
             WHERE report_deliveries.status = 'failed' OR $5 \
             RETURNING attempts",
        );
        let look = dialect(
            &self.pool,
            "SELECT status, updated_at, sent_at, detail \
             FROM report_deliveries \
             WHERE account_id = $1 AND team_id = $2 AND week = $3 AND channel = $4",
        );
        let (claimed, row): (Option<i32>, Option<Row>) = on_pool!(&self.pool, p => {
            let claimed: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(claim.as_str()))
                .bind(d.account_id)
                .bind(d.team())
                .bind(d.week)
                .bind(d.channel)
                .bind(again)
                .fetch_optional(p)
                .await
                .map_err(err("claiming a report delivery"))?;
            let row = if claimed.is_some() {
                None
            } else {
                sqlx::query_as(sqlx::AssertSqlSafe(look.as_str()))
                    .bind(d.account_id)
                    .bind(d.team())
                    .bind(d.week)
                    .bind(d.channel)
                    .fetch_optional(p)
                    .await
                    .map_err(err("reading a report delivery"))?
            };
            (claimed, row)
        });
        Ok(match (claimed, row) {
            (Some(attempt), _) => Claim::Claimed { attempt },
            (None, Some((status, updated, sent, detail))) if status == "sent" => Claim::Sent {
                at: sent.unwrap_or(updated),
                detail,
            },
            (None, Some((_, since, _, detail))) => Claim::Interrupted { since, detail },
            // The row was deleted between the two statements: someone else holds it now.
            (None, None) => Claim::Interrupted {
                since: Utc::now(),
                detail: None,
            },
        })
    }

    /// Records how the claimed delivery `d` ended, with `detail`: for a sent one what the
    /// send recorded (e.g. the recipients), else why it did not (surely) arrive.
    #[tracing::instrument(skip_all, fields(account = d.account_id, team = d.team_id, week = d.week, channel = d.channel, ?ended), err)]
    pub async fn finish_delivery(&self, d: Delivery<'_>, ended: Ended, detail: &str) -> Result<()> {
        let sql = dialect(
            &self.pool,
            "UPDATE report_deliveries SET status = $5, detail = $6, updated_at = {now}, \
             sent_at = CASE WHEN $5 = 'sent' THEN {now} ELSE sent_at END \
             WHERE account_id = $1 AND team_id = $2 AND week = $3 AND channel = $4 \
               AND status = 'sending'",
        );
        on_pool!(&self.pool, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(d.account_id)
                .bind(d.team())
                .bind(d.week)
                .bind(d.channel)
                .bind(ended.status())
                .bind(detail)
                .execute(p)
                .await
                .map(|_| ())
                .map_err(err("recording a report delivery"))
        })
    }

    /// The deliveries of `account` that have not gone out (failed, unknown or still being
    /// sent), oldest week first.
    pub async fn unsent_deliveries(&self, account: i64) -> Result<Vec<Unsent>> {
        let sql = dialect(
            &self.pool,
            "SELECT team_id, week, channel, status, detail, updated_at FROM report_deliveries \
             WHERE account_id = $1 AND status <> 'sent' ORDER BY week, team_id, channel",
        );
        let rows: Vec<UnsentRow> = on_pool!(&self.pool, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(account)
                .fetch_all(p)
                .await
                .map_err(err("listing unsent report deliveries"))?
        });
        Ok(rows
            .into_iter()
            .map(|(team, week, channel, status, detail, updated_at)| Unsent {
                team_id: (team >= 0).then_some(team),
                week,
                channel,
                status,
                detail,
                updated_at,
            })
            .collect())
    }
}
