//! A small client of the Confluent schema registry REST API: fetch a writer schema by id (cached
//! forever: ids are immutable) and register a schema under a subject (for `produce`).

use super::schema::WriterSchema;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Why the registry could not give us a schema.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Network error, timeout or 5xx: try again later.
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
    /// The registry does not know the id (404), or the schema is not Avro or does not parse.
    #[error("schema registry: {0}")]
    Unknown(String),
}

/// Fetches and caches writer schemas by id.
#[derive(Debug)]
pub struct RegistryClient {
    base: String,
    http: reqwest::Client,
    cache: RwLock<HashMap<u32, Arc<WriterSchema>>>,
}

#[derive(serde::Deserialize)]
struct SchemaById {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
}

#[derive(serde::Deserialize)]
struct Registered {
    id: u32,
}

impl RegistryClient {
    /// A client for the registry at `base` (e.g. `http://registry:8081`).
    pub fn new(base: &str, timeout: Duration) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| RegistryError::Unavailable(format!("HTTP client: {e}")))?;
        Ok(RegistryClient {
            base: base.trim_end_matches('/').to_string(),
            http,
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// The schema with `id` if it is already cached (no I/O).
    pub fn cached(&self, id: u32) -> Option<Arc<WriterSchema>> {
        let guard = self.cache.read().unwrap_or_else(|p| p.into_inner());
        guard.get(&id).cloned()
    }

    /// Puts a schema under `id` in the cache, as if fetched (ids are immutable, so a schema
    /// known by other means is as good as a fetched one). Lets tests and the fuzz targets decode
    /// Confluent-framed records without a registry; an id already cached keeps its schema.
    pub fn prime(&self, id: u32, schema: WriterSchema) -> Arc<WriterSchema> {
        let mut guard = self.cache.write().unwrap_or_else(|p| p.into_inner());
        guard.entry(id).or_insert_with(|| Arc::new(schema)).clone()
    }

    /// The schema with `id`, from the cache or the registry.
    pub async fn get(&self, id: u32) -> Result<Arc<WriterSchema>, RegistryError> {
        if let Some(ws) = self.cached(id) {
            return Ok(ws);
        }
        let url = format!("{}/schemas/ids/{id}", self.base);
        let resp = self
            .http
            .get(&url)
            .header(
                "Accept",
                "application/vnd.schemaregistry.v1+json, application/json",
            )
            .send()
            .await
            .map_err(|e| RegistryError::Unavailable(format!("GET {url}: {e}")))?;
        let status = resp.status();
        if status.as_u16() == 404 {
            return Err(RegistryError::Unknown(format!("schema id {id} not found")));
        }
        if !status.is_success() {
            return Err(RegistryError::Unavailable(format!(
                "GET {url}: HTTP {status}"
            )));
        }
        let body: SchemaById = resp
            .bytes()
            .await
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| RegistryError::Unavailable(format!("GET {url}: bad response: {e}")))?;
        if let Some(t) = body.schema_type.as_deref() {
            if !t.eq_ignore_ascii_case("AVRO") {
                return Err(RegistryError::Unknown(format!(
                    "schema id {id} is {t}, not AVRO"
                )));
            }
        }
        let ws = WriterSchema::parse(&body.schema, format!("registry id {id}"))
            .map_err(|e| RegistryError::Unknown(e.to_string()))?;
        let ws = Arc::new(ws);
        let mut guard = self.cache.write().unwrap_or_else(|p| p.into_inner());
        Ok(guard.entry(id).or_insert(ws).clone())
    }

    /// Registers `schema_text` under `subject` and returns its id (idempotent in the registry).
    pub async fn register(&self, subject: &str, schema_text: &str) -> Result<u32, RegistryError> {
        let url = format!("{}/subjects/{subject}/versions", self.base);
        let body = serde_json::json!({ "schema": schema_text });
        let resp = self
            .http
            .post(&url)
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| RegistryError::Unavailable(format!("POST {url}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let err = format!("POST {url}: HTTP {status}: {text}");
            return Err(if status.is_server_error() {
                RegistryError::Unavailable(err)
            } else {
                RegistryError::Unknown(err)
            });
        }
        let reg: Registered = resp
            .bytes()
            .await
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| RegistryError::Unavailable(format!("POST {url}: bad response: {e}")))?;
        Ok(reg.id)
    }
}
