//! The API's OpenAPI document, generated from the wire types ([`super::wire`]), the
//! parameter declarations ([`super::params`]) and the handlers' annotations, so the
//! document and the server cannot disagree.

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::wire::{DetailBody, ErrorBody, IncidentsBody, NoisyBody, ReportBody};

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token of one account, from `mttx token create --account <id>`",
                    ))
                    .build(),
            ),
        );
        // PagerDuty's form, for the Analytics API's paths (and accepted everywhere).
        components.add_security_scheme(
            "pagerduty_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Token token=<token>`, with a token of one account from `mttx token create --account <id>`",
            ))),
        );
    }
}

/// The OpenAPI document of the report API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "mttx report API",
        description = "Incident analytics: MTTA/MTTR, percentiles, deltas, breakdowns, drilldown. Every token sees one account."
    ),
    paths(
        super::reports::report,
        super::incidents::drilldown,
        super::incidents::detail,
        super::reports::noisy,
        super::health,
        super::ready,
        super::metrics::scrape,
        super::analytics::all,
        super::analytics::services,
        super::analytics::services_all,
        super::analytics::teams,
        super::analytics::teams_all,
        super::analytics::escalation_policies,
        super::analytics::escalation_policies_all,
        super::analytics::responders_all,
        super::analytics::raw_incidents,
        super::analytics::raw_incident,
    ),
    components(schemas(ErrorBody, ReportBody, IncidentsBody, DetailBody, NoisyBody)),
    modifiers(&Bearer),
    security(("bearer" = [])),
)]
#[derive(Debug)]
pub struct ApiDoc;

/// `/openapi.json`.
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagerdutys_paths_are_declared_with_closed_bodies() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for path in [
            "/analytics/metrics/incidents/all",
            "/analytics/metrics/incidents/services",
            "/analytics/metrics/incidents/services/all",
            "/analytics/metrics/incidents/teams",
            "/analytics/metrics/incidents/teams/all",
            "/analytics/metrics/incidents/escalation_policies",
            "/analytics/metrics/incidents/escalation_policies/all",
            "/analytics/metrics/responders/all",
            "/analytics/raw/incidents",
        ] {
            assert!(doc["paths"][path]["post"].is_object(), "{path}");
        }
        assert!(doc["paths"]["/analytics/raw/incidents/{id}"]["get"].is_object());
        // The server refuses unknown fields; the document says so.
        let schemas = &doc["components"]["schemas"];
        for body in [
            "MetricsRequest",
            "IncidentFilters",
            "RespondersRequest",
            "ResponderFilters",
            "RawRequest",
        ] {
            assert_eq!(
                schemas[body]["additionalProperties"],
                serde_json::Value::Bool(false),
                "{body}: {}",
                schemas[body]
            );
        }
        assert!(schemas["MetricsRow"]["properties"]["p95_seconds_to_resolve"].is_object());
    }
}
