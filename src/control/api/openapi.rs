//! The OpenAPI 3.0 document, built while the routes are registered: each route is added with its
//! description ([`Op`]) and its request and response types, whose schemas come from the same
//! Rust types the handlers use (through `schemars`). A route cannot exist without its entry.

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

/// Makes the schema of a type, registering the types it refers to.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T` (for [`Op`]).
pub fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// One operation of the API.
pub struct Op {
    /// One line.
    pub summary: &'static str,
    /// Longer description.
    pub description: &'static str,
    /// The JSON request body, if any.
    pub request: Option<SchemaFn>,
    /// The success status and its JSON body (none: no body, or not JSON).
    pub response: (u16, &'static str, Option<SchemaFn>),
    /// Content type of a non-JSON success body.
    pub text: Option<&'static str>,
    /// Error statuses it can answer, beside 401.
    pub errors: &'static [u16],
    /// Whether the API token applies to it.
    pub secured: bool,
    /// Query parameters: (name, JSON type, description).
    pub query: &'static [(&'static str, &'static str, &'static str)],
}

/// The document being built.
pub struct Doc {
    generator: SchemaGenerator,
    paths: Map<String, Value>,
}

impl Default for Doc {
    fn default() -> Self {
        Self {
            generator: SchemaSettings::openapi3().for_serialize().into_generator(),
            paths: Map::new(),
        }
    }
}

impl Doc {
    /// Adds an operation.
    pub fn add(&mut self, method: &str, path: &str, op: &Op) {
        let error_schema = self.generator.subschema_for::<super::error::ErrorBody>();
        let mut responses = Map::new();
        let (status, description, body) = op.response;
        let mut ok = json!({ "description": description });
        if let Some(f) = body {
            ok["content"] = json!({ "application/json": { "schema": f(&mut self.generator) } });
        } else if let Some(ct) = op.text {
            ok["content"] = json!({ ct: { "schema": { "type": "string" } } });
        }
        responses.insert(status.to_string(), ok);
        // The edge's answers, which any route of the kind can give (docs/security.md).
        let http_method = axum::http::Method::from_bytes(method.to_uppercase().as_bytes())
            .unwrap_or(axum::http::Method::GET);
        let declared = super::guard::declared(&http_method, path);
        let mut errors: Vec<u16> = op.errors.to_vec();
        errors.push(421);
        if op.secured {
            errors.extend([401, 429]);
        }
        if http_method != axum::http::Method::GET || path.ends_with("/ws") {
            errors.push(403);
        }
        if declared.is_some() {
            errors.extend([413, 415]);
        }
        if !op.query.is_empty() {
            errors.push(400);
        }
        errors.sort_unstable();
        errors.dedup();
        for code in errors {
            responses.insert(
                code.to_string(),
                json!({
                    "description": error_description(code),
                    "content": { "application/json": { "schema": error_schema.clone() } }
                }),
            );
        }
        let mut operation = json!({
            "summary": op.summary,
            "description": op.description,
            "operationId": operation_id(method, path),
            "responses": responses,
        });
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .chain(op.query.iter().map(|(name, ty, desc)| {
                json!({ "name": name, "in": "query", "required": false, "description": desc, "schema": { "type": ty } })
            }))
            .collect();
        if !params.is_empty() {
            operation["parameters"] = Value::Array(params);
        }
        if let Some((content_type, true)) = declared
            && content_type != "application/json"
        {
            operation["requestBody"] = json!({
                "required": true,
                "content": { content_type: { "schema": { "type": "string" } } }
            });
        }
        if let Some(f) = op.request {
            let mut request_gen = SchemaSettings::openapi3()
                .for_deserialize()
                .into_generator();
            let schema = f(&mut request_gen);
            for (k, v) in request_gen.take_definitions(true) {
                self.generator.definitions_mut().entry(k).or_insert(v);
            }
            operation["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": schema } }
            });
        }
        if !op.secured {
            operation["security"] = json!([]);
        }
        let entry = self
            .paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[method] = operation;
    }

    /// The finished document.
    pub fn finish(mut self) -> Value {
        json!({
            "openapi": "3.0.3",
            "info": {
                "title": "framegate API",
                "version": env!("CARGO_PKG_VERSION"),
                "description": "Manage framegate's streams and watch their state."
            },
            "paths": self.paths,
            "components": {
                "schemas": self.generator.take_definitions(true),
                "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
            },
            "security": [ { "bearer": [] } ]
        })
    }
}

fn error_description(code: u16) -> &'static str {
    match code {
        400 => "A query parameter or the body is not valid; `detail` names it and its range.",
        401 => {
            "A token is required: `Authorization: Bearer <token>` (or a viewer token, `?vt=`, on viewing URLs)."
        }
        403 => "A page on another origin may not do this (`server.allowed_origins`).",
        404 => "No stream with this id.",
        409 => "A stream with this id exists already, or the stream is stopped.",
        413 => "The body is larger than 256 KiB.",
        415 => "The body is not declared as what the route takes.",
        421 => "This server does not answer to this `Host` (`server.allowed_hosts`).",
        422 => "The config file could not be reloaded.",
        429 => "This address failed to authenticate too often; try again in a minute.",
        503 => {
            "Not available now (not ready, no picture yet, or a cap on viewers, encoders or sessions is reached)."
        }
        _ => "Error.",
    }
}

fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for seg in path.split('/').filter(|s| !s.is_empty() && *s != "api") {
        let seg = seg.trim_matches(|c| c == '{' || c == '}');
        let mut chars = seg.chars();
        if let Some(first) = chars.next() {
            id.push(first.to_ascii_uppercase());
            id.extend(chars.filter(|c| c.is_ascii_alphanumeric()));
        }
    }
    id
}
