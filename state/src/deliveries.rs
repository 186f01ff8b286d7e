//! `report_deliveries`: the weekly reports `mttx report send` has sent, one row per account,
//! team, ISO week and channel. A send first claims its row (`sending`), then marks it `sent`
//! or `failed`: a failed send is claimed again and retried, a sent one is never claimed
//! again (unless resent on purpose), and a row a crash left `sending` is reported as
//! interrupted rather than sent a second time.

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
    Sent { at: String, detail: Option<String> },
    /// A send began at `since` and never recorded its end (a crash, or another process
    /// sending it right now): whether it arrived is unknown.
    Interrupted { since: String },
}

/// A delivery's row as [`State::claim_delivery`] reads it: status, updated at, sent at and
/// detail.
type Row = (String, String, Option<String>, Option<String>);

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
            "SELECT status, CAST(updated_at AS TEXT), CAST(sent_at AS TEXT), detail \
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
            (None, Some((_, updated, _, _))) => Claim::Interrupted { since: updated },
            // The row was deleted between the two statements: nothing holds it now.
            (None, None) => Claim::Interrupted {
                since: "an unknown time".to_owned(),
            },
        })
    }

    /// Records how the claimed delivery `d` ended: sent (with `detail`, e.g. the
    /// recipients), or failed with `detail` saying why.
    #[tracing::instrument(skip_all, fields(account = d.account_id, team = d.team_id, week = d.week, channel = d.channel, sent), err)]
    pub async fn finish_delivery(&self, d: Delivery<'_>, sent: bool, detail: &str) -> Result<()> {
        let sql = dialect(
            &self.pool,
            "UPDATE report_deliveries SET status = $5, detail = $6, updated_at = {now}, \
             sent_at = CASE WHEN $5 = 'sent' THEN {now} ELSE sent_at END \
             WHERE account_id = $1 AND team_id = $2 AND week = $3 AND channel = $4",
        );
        on_pool!(&self.pool, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(d.account_id)
                .bind(d.team())
                .bind(d.week)
                .bind(d.channel)
                .bind(if sent { "sent" } else { "failed" })
                .bind(detail)
                .execute(p)
                .await
                .map(|_| ())
                .map_err(err("recording a report delivery"))
        })
    }
}
