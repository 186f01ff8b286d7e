//! `/docs`: the API reference, Swagger UI rendered from `/openapi.json`. Its script and
//! styles are the `swagger-ui-dist` crate's copy of Swagger UI, compiled into the binary
//! (crates.io at build time, never a CDN at run time), so the page works with no network.
//! "Try it out" sends real requests with the token given under "Authorize" (an API token,
//! as for every `/api/v1` call); the page keeps it only while it is open.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;
use swagger_ui_dist::{ApiDefinition, OpenApiSource};

use super::App;

/// Where Swagger UI's files are served.
const ASSETS: &str = "/docs/assets";

/// The page: Swagger UI's styles and script, then ours that starts it (no inline script,
/// so the page's content security policy allows only this server's scripts).
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mttx API reference</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/start.js"></script>
</body>
</html>
"#;

/// Starts Swagger UI on `/openapi.json`: try-it-out open on every operation, no call to
/// swagger.io's validator, the token forgotten when the page closes.
const START: &str = r##"window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  tryItOutEnabled: true,
  persistAuthorization: false,
  validatorUrl: null,
  displayRequestDuration: true
});
"##;

/// The content security policy of the page: this server's scripts, styles (and the inline
/// ones Swagger UI sets), images and requests only.
pub(crate) const POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     font-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) fn routes() -> Router<Arc<App>> {
    let assets = swagger_ui_dist::generate_routes(ApiDefinition {
        uri_prefix: ASSETS,
        api_definition: OpenApiSource::Uri("/openapi.json"),
        title: Some("mttx API reference"),
    });
    Router::new()
        .route("/docs", get(|| async { Html(PAGE) }))
        .route("/docs/", get(|| async { Redirect::permanent("/docs") }))
        .route(
            "/docs/start.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], START).into_response() }),
        )
        .route_service(&format!("{ASSETS}/{{*file}}"), assets)
}
