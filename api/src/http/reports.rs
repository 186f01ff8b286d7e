//! `/api/v1/reports/*`: a token's account, a period and filters in; the period's metrics
//! beside the previous period's (with a breakdown and a trend), or the noisy-alerts view,
//! out as JSON with names beside ids, computed by the engine or served from the answer
//! cache.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use mttx_query::{Engine, GroupBy, Unit};

use super::auth::Account;
use super::cache::cached_named;
use super::params::{
    Asked, FilterParams, FormatParams, NoisyParams, PeriodParams, ReportParams, asked,
    noisy_options, optional,
};
use super::wire::{
    BucketBody, ErrorBody, NamedNoisy, NoisyBody, ReportBody, period_body, row_body,
};
use super::{ApiError, App};
use crate::named::{account_label, name_rows};

/// A report of the period against the previous period of equal length.
#[utoipa::path(
    get,
    path = "/api/v1/reports/incidents",
    tag = "reports",
    params(PeriodParams, FilterParams, ReportParams, FormatParams),
    responses(
        (status = 200, description = "The period's metrics, breakdown and trend (as CSV with format=csv or Accept: text/csv: one row per group and metric)", content(
            (ReportBody = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A parameter to fix", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(account = account), err(level = "info"))]
pub(crate) async fn report(
    State(app): State<Arc<App>>,
    Account(account): Account,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Asked {
        mut params,
        period,
        filters,
    } = asked(query.as_deref(), &app.accepted.report)?;
    let csv = super::csv_answer::wanted(&mut params, &headers)?;
    let group_by = optional::<GroupBy>(&params, "group_by")?;
    let unit = optional::<Unit>(&params, "unit")?;
    let names = app.directory(account).await;
    let json = cached_named(
        &app,
        "report",
        account,
        Some(&names),
        &params,
        async |engine: &Engine| {
            let (report, trend) = engine
                .report_and_trend(account, &period, group_by, unit, &filters)
                .await?;
            let buckets = trend.map(|trend| {
                trend
                    .iter()
                    .map(|(start, m)| BucketBody::new(*start, m))
                    .collect()
            });
            let mut groups: Vec<_> = report
                .groups
                .iter()
                .map(|g| row_body(g, Some(&report.account)))
                .collect();
            if let Some(g) = report.group_by {
                name_rows(&names, g, &mut groups);
            }
            Ok(ReportBody {
                account_id: account,
                account_name: account_label(&names),
                period: period_body(&period),
                previous_period: period_body(&period.previous()),
                facts_version: engine.version(),
                generation: engine.generation(),
                data_as_of: engine.data_as_of(),
                metrics_version: engine.metrics_version(account).number(),
                total: row_body(&report.account, None),
                group_by: report.group_by,
                groups,
                unit,
                buckets,
            })
        },
    )
    .await?;
    if !csv {
        return Ok(json);
    }
    let hit = json.headers().get("x-mttx-cache").cloned();
    let body = axum::body::to_bytes(json.into_body(), usize::MAX)
        .await
        .map_err(|e| {
            ApiError::internal(
                "the answer could not be read back; the server log says why",
                e,
            )
        })?;
    super::csv_answer::report(&body, hit)
}

/// Noisy alerts: the services and alerts with the most incidents, the highest auto-resolve
/// share, the most flapping, and bursts of similar incidents (titles equal once words with
/// digits are masked) within minutes, on one service or several.
#[utoipa::path(
    get,
    path = "/api/v1/reports/noisy",
    tag = "reports",
    params(PeriodParams, FilterParams, NoisyParams),
    responses(
        (status = 200, description = "The noisy-alerts view", body = NoisyBody),
        (status = 400, description = "A parameter to fix", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(account = account), err(level = "info"))]
pub(crate) async fn noisy(
    State(app): State<Arc<App>>,
    Account(account): Account,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Asked {
        params,
        period,
        filters,
    } = asked(query.as_deref(), &app.accepted.noisy)?;
    let options = noisy_options(&params)?;
    let names = app.directory(account).await;
    cached_named(
        &app,
        "noisy",
        account,
        Some(&names),
        &params,
        async |engine: &Engine| {
            let view = crate::named::noisy(
                engine,
                app.source.as_ref(),
                account,
                &period,
                &filters,
                &options,
            )
            .await?;
            Ok(NoisyBody {
                account_id: account,
                period: period_body(&period),
                facts_version: engine.version(),
                generation: engine.generation(),
                data_as_of: engine.data_as_of(),
                metrics_version: engine.metrics_version(account).number(),
                view: NamedNoisy::new(&names, view),
            })
        },
    )
    .await
}
