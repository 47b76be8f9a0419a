//! [`ServiceInstance`] and its JSON, byte for byte as Curator 5's `JsonInstanceSerializer`
//! writes it.

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::RecipeError;

/// How an instance's node lives (Curator's `ServiceType`), written as `"DYNAMIC"`,
/// `"STATIC"`, `"PERMANENT"` or `"DYNAMIC_SEQUENTIAL"`.
///
/// ```
/// use corral_recipes::discovery::ServiceType;
/// assert!(ServiceType::Dynamic.is_dynamic());
/// assert_eq!(serde_json::to_string(&ServiceType::DynamicSequential).unwrap(), "\"DYNAMIC_SEQUENTIAL\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceType {
    /// An ephemeral node `<base>/<service>/<id>`: it goes with the registering session
    /// (and is registered again by the registry after a new session).
    #[default]
    Dynamic,
    /// A persistent node.
    Static,
    /// A persistent node.
    Permanent,
    /// An ephemeral sequential node `<base>/<service>/<id><sequence>`.
    DynamicSequential,
}

impl ServiceType {
    /// Whether the instance's node is ephemeral.
    pub fn is_dynamic(self) -> bool {
        matches!(self, ServiceType::Dynamic | ServiceType::DynamicSequential)
    }

    fn lower_name(self) -> &'static str {
        match self {
            ServiceType::Dynamic => "dynamic",
            ServiceType::Static => "static",
            ServiceType::Permanent => "permanent",
            ServiceType::DynamicSequential => "dynamic_sequential",
        }
    }
}

/// One token of a [`UriSpec`]: literal text, or the name of a variable.
///
/// ```
/// use corral_recipes::discovery::{UriPart, UriSpec};
/// let spec = UriSpec::new("{scheme}://x").unwrap();
/// assert_eq!(spec.parts[0], UriPart { value: "scheme".into(), variable: true });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UriPart {
    /// The text, or the variable's name.
    pub value: String,
    /// Whether `value` names a variable.
    pub variable: bool,
}

/// A URI template with `{variable}` fields (Curator's `UriSpec`), written as
/// `{"parts":[{"value":…,"variable":…},…]}`.
///
/// Predefined variables: `scheme` (`http`, or `https` when the instance has an SSL port),
/// `name`, `id`, `address`, `port`, `ssl-port`, `registration-time-utc`, `service-type`,
/// and `[` / `]` for literal braces.
///
/// ```
/// use std::collections::HashMap;
/// use corral_recipes::discovery::{ServiceInstance, UriSpec};
/// let spec = UriSpec::new("{scheme}://{address}:{port}/{path}").unwrap();
/// let instance: ServiceInstance = ServiceInstance::new("api")
///     .with_address("10.0.0.7")
///     .with_port(8080)
///     .with_uri_spec(spec);
/// let vars = HashMap::from([("path".to_string(), "health".to_string())]);
/// assert_eq!(instance.build_uri(&vars), "http://10.0.0.7:8080/health");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct UriSpec {
    /// The tokens, in order.
    #[serde(default)]
    pub parts: Vec<UriPart>,
}

impl UriSpec {
    /// Parses a template such as `"{scheme}://foo.com:{port}"`, as Curator does.
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for a nested `{`, a `}` without `{`, or an unclosed
    /// variable.
    pub fn new(raw: &str) -> Result<UriSpec, RecipeError> {
        let mut parts = Vec::new();
        let mut inside = false;
        let mut token = String::new();
        let bad = |m: &str| Err(RecipeError::BadArguments(format!("uri spec {raw:?}: {m}")));
        let mut flush = |token: &mut String, inside: bool| {
            if !token.is_empty() {
                let value = if inside {
                    token.trim().to_owned()
                } else {
                    token.clone()
                };
                parts.push(UriPart {
                    value,
                    variable: inside,
                });
                token.clear();
            }
        };
        for c in raw.chars() {
            match c {
                '{' => {
                    if inside {
                        return bad("{ is not allowed inside of a variable specification");
                    }
                    flush(&mut token, inside);
                    inside = true;
                }
                '}' => {
                    if !inside {
                        return bad("} must be preceded by {");
                    }
                    flush(&mut token, inside);
                    inside = false;
                }
                c => token.push(c),
            }
        }
        if inside {
            return bad("final variable not closed - expected }");
        }
        flush(&mut token, inside);
        Ok(UriSpec { parts })
    }

    /// Fills in the template with the predefined variables of `instance` (if any) and
    /// `variables` (which win). Unknown variables are left out, as in Curator.
    pub fn build<T>(
        &self,
        instance: Option<&ServiceInstance<T>>,
        variables: &HashMap<String, String>,
    ) -> String {
        let mut local: HashMap<&str, String> = HashMap::new();
        local.insert("[", "{".into());
        local.insert("]", "}".into());
        local.insert("scheme", "http".into());
        if let Some(i) = instance {
            let opt = |p: Option<u16>| p.map(|p| p.to_string()).unwrap_or_default();
            local.insert("name", i.name.clone());
            local.insert("id", i.id.clone());
            local.insert("address", i.address.clone().unwrap_or_default());
            local.insert("port", opt(i.port));
            local.insert("ssl-port", opt(i.ssl_port));
            local.insert("registration-time-utc", i.registration_time_utc.to_string());
            local.insert("service-type", i.service_type.lower_name().into());
            if i.ssl_port.is_some() {
                local.insert("scheme", "https".into());
            }
        }
        let mut out = String::new();
        for part in &self.parts {
            if part.variable {
                let value = variables
                    .get(&part.value)
                    .or_else(|| local.get(part.value.as_str()));
                if let Some(v) = value {
                    out.push_str(v);
                }
            } else {
                out.push_str(&part.value);
            }
        }
        out
    }
}

/// One instance of a service, as curator-x-discovery stores it: the data of the node
/// `<base>/<name>/<id>`, in Curator's JSON.
///
/// The payload is any serde type (`serde_json::Value` by default). Curator (Jackson)
/// writes payloads with their Java class: `{"@class":"com.example.Details",…}` for
/// objects, `["java.lang.Long",5]` for other non-natural types. Set
/// [`ServiceInstance::payload_class`] to write it that way (Java readers with a POJO
/// payload class need it); when reading, it is filled in from the JSON and the `@class`
/// field is not passed on to the payload type.
///
/// The JSON has Curator's field order: `name`, `id`, `address`, `port`, `sslPort`,
/// `payload`, `registrationTimeUTC`, `serviceType`, `uriSpec`; `enabled` is written only
/// when it is `false` (Curator 5's default serializer leaves it out, and readers take a
/// missing `enabled` as `true`).
///
/// ```
/// use corral_recipes::discovery::{ServiceInstance, ServiceType};
/// #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct Details { zone: String }
///
/// let instance = ServiceInstance::new("api")
///     .with_id("api-1")
///     .with_address("10.0.0.7")
///     .with_port(8080)
///     .with_payload(Details { zone: "eu-1".into() })
///     .with_payload_class("java.util.HashMap")
///     .with_registration_time_utc(1_700_000_000_000);
/// let json = instance.to_json().unwrap();
/// assert_eq!(
///     String::from_utf8(json.clone()).unwrap(),
///     r#"{"name":"api","id":"api-1","address":"10.0.0.7","port":8080,"sslPort":null,"payload":{"@class":"java.util.HashMap","zone":"eu-1"},"registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":null}"#
/// );
/// assert_eq!(ServiceInstance::<Details>::from_json(&json).unwrap(), instance);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceInstance<T = Value> {
    /// The service's name (the node's parent).
    pub name: String,
    /// The instance's id (the node's name), unique within the service.
    pub id: String,
    /// Where to reach it (Curator defaults to the first local IP; we do not guess).
    pub address: Option<String>,
    /// Its port.
    pub port: Option<u16>,
    /// Its SSL port.
    pub ssl_port: Option<u16>,
    /// Application data.
    pub payload: Option<T>,
    /// The Java class Curator records with the payload (`@class`), if any.
    pub payload_class: Option<String>,
    /// When it registered, in milliseconds since the Unix epoch.
    pub registration_time_utc: i64,
    /// How its node lives.
    pub service_type: ServiceType,
    /// A URI template for it.
    pub uri_spec: Option<UriSpec>,
    /// Whether providers may hand it out.
    pub enabled: bool,
}

impl<T> ServiceInstance<T> {
    /// An instance of service `name` with a random UUID id, registered now, `Dynamic`,
    /// enabled, with nothing else set.
    pub fn new(name: impl Into<String>) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        ServiceInstance {
            name: name.into(),
            id: uuid::Uuid::new_v4().to_string(),
            address: None,
            port: None,
            ssl_port: None,
            payload: None,
            payload_class: None,
            registration_time_utc: now,
            service_type: ServiceType::Dynamic,
            uri_spec: None,
            enabled: true,
        }
    }

    /// Sets the id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets the address.
    pub fn with_address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// Sets the port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Sets the SSL port.
    pub fn with_ssl_port(mut self, port: u16) -> Self {
        self.ssl_port = Some(port);
        self
    }

    /// Sets the payload.
    pub fn with_payload(mut self, payload: T) -> Self {
        self.payload = Some(payload);
        self
    }

    /// Sets the Java class written with the payload (`@class`).
    pub fn with_payload_class(mut self, class: impl Into<String>) -> Self {
        self.payload_class = Some(class.into());
        self
    }

    /// Sets the registration time (ms since the Unix epoch).
    pub fn with_registration_time_utc(mut self, ms: i64) -> Self {
        self.registration_time_utc = ms;
        self
    }

    /// Sets the service type.
    pub fn with_service_type(mut self, service_type: ServiceType) -> Self {
        self.service_type = service_type;
        self
    }

    /// Sets the URI template.
    pub fn with_uri_spec(mut self, spec: UriSpec) -> Self {
        self.uri_spec = Some(spec);
        self
    }

    /// Enables or disables the instance (disabled instances are never provided).
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// The instance's URI from its template (empty without one); see [`UriSpec::build`].
    pub fn build_uri(&self, variables: &HashMap<String, String>) -> String {
        self.uri_spec
            .as_ref()
            .map(|s| s.build(Some(self), variables))
            .unwrap_or_default()
    }
}

fn json<V: Serialize + ?Sized>(v: &V) -> Result<String, RecipeError> {
    serde_json::to_string(v).map_err(|e| RecipeError::InvalidData(e.to_string()))
}

impl<T: Serialize> ServiceInstance<T> {
    /// The instance as Curator's JSON (see the type's docs).
    ///
    /// # Errors
    ///
    /// [`RecipeError::InvalidData`] when the payload cannot be serialized.
    pub fn to_json(&self) -> Result<Vec<u8>, RecipeError> {
        let payload = match &self.payload {
            None => "null".to_owned(),
            Some(p) => {
                let body = json(p)?;
                match &self.payload_class {
                    None => body,
                    Some(class) => {
                        let class = json(class)?;
                        match body.strip_prefix('{') {
                            Some(rest) if rest.trim_start().starts_with('}') => {
                                format!("{{\"@class\":{class}}}")
                            }
                            Some(rest) => format!("{{\"@class\":{class},{rest}"),
                            // Jackson's fallback for values that are not objects.
                            None => format!("[{class},{body}]"),
                        }
                    }
                }
            }
        };
        let mut out = String::with_capacity(192 + payload.len());
        out.push_str("{\"name\":");
        out.push_str(&json(&self.name)?);
        out.push_str(",\"id\":");
        out.push_str(&json(&self.id)?);
        out.push_str(",\"address\":");
        out.push_str(&json(&self.address)?);
        out.push_str(",\"port\":");
        out.push_str(&json(&self.port)?);
        out.push_str(",\"sslPort\":");
        out.push_str(&json(&self.ssl_port)?);
        out.push_str(",\"payload\":");
        out.push_str(&payload);
        out.push_str(",\"registrationTimeUTC\":");
        out.push_str(&self.registration_time_utc.to_string());
        out.push_str(",\"serviceType\":");
        out.push_str(&json(&self.service_type)?);
        out.push_str(",\"uriSpec\":");
        out.push_str(&json(&self.uri_spec)?);
        if !self.enabled {
            out.push_str(",\"enabled\":false");
        }
        out.push('}');
        Ok(out.into_bytes())
    }
}

impl<T: DeserializeOwned> ServiceInstance<T> {
    /// Reads Curator's JSON (any version: unknown fields are ignored, a missing `enabled`
    /// is `true`, a missing `serviceType` is `DYNAMIC`).
    ///
    /// # Errors
    ///
    /// [`RecipeError::InvalidData`] for data that is not such JSON, or whose payload does
    /// not fit `T`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RecipeError> {
        let invalid = |e: &dyn fmt::Display| RecipeError::InvalidData(e.to_string());
        let value: Value = serde_json::from_slice(bytes).map_err(|e| invalid(&e))?;
        let Value::Object(mut obj) = value else {
            return Err(RecipeError::InvalidData(
                "a service instance is a JSON object".into(),
            ));
        };
        fn field<V: DeserializeOwned + Default>(
            obj: &mut serde_json::Map<String, Value>,
            key: &str,
        ) -> Result<V, RecipeError> {
            match obj.remove(key) {
                None | Some(Value::Null) => Ok(V::default()),
                Some(v) => serde_json::from_value(v)
                    .map_err(|e| RecipeError::InvalidData(format!("{key}: {e}"))),
            }
        }
        let payload_err = |e: serde_json::Error| RecipeError::InvalidData(format!("payload: {e}"));
        let (payload, payload_class) = match obj.remove("payload") {
            None | Some(Value::Null) => (None, None),
            Some(Value::Object(mut m)) => {
                let class = match m.remove("@class") {
                    Some(Value::String(c)) => Some(c),
                    _ => None,
                };
                let p = serde_json::from_value(Value::Object(m)).map_err(payload_err)?;
                (Some(p), class)
            }
            Some(Value::Array(a)) => match serde_json::from_value(Value::Array(a.clone())) {
                Ok(p) => (Some(p), None),
                Err(e) => match <[Value; 2]>::try_from(a) {
                    Ok([Value::String(class), inner]) => (
                        Some(serde_json::from_value(inner).map_err(payload_err)?),
                        Some(class),
                    ),
                    _ => return Err(payload_err(e)),
                },
            },
            Some(other) => (
                Some(serde_json::from_value(other).map_err(payload_err)?),
                None,
            ),
        };
        let enabled = match obj.remove("enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => b,
            Some(other) => return Err(RecipeError::InvalidData(format!("enabled: {other}"))),
        };
        Ok(ServiceInstance {
            name: field(&mut obj, "name")?,
            id: field(&mut obj, "id")?,
            address: field(&mut obj, "address")?,
            port: field(&mut obj, "port")?,
            ssl_port: field(&mut obj, "sslPort")?,
            payload,
            payload_class,
            registration_time_utc: field(&mut obj, "registrationTimeUTC")?,
            service_type: field(&mut obj, "serviceType")?,
            uri_spec: field(&mut obj, "uriSpec")?,
            enabled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Details {
        description: String,
        weight: i32,
    }

    // Printed by Curator 5.4.0's JsonInstanceSerializer (Debian's curator-x-discovery jar)
    // for the same instances; tests/interop/DiscoveryMember.java `print` prints them again.
    const CURATOR_POJO: &str = r#"{"name":"svc","id":"id-1","address":"10.0.0.1","port":8080,"sslPort":null,"payload":{"@class":"Probe$Details","description":"d","weight":3},"registrationTimeUTC":1234,"serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"scheme","variable":true},{"value":"://foo.com:","variable":false},{"value":"port","variable":true}]}}"#;
    const CURATOR_LONG_DISABLED: &str = r#"{"name":"svc","id":"id-1","address":"10.0.0.1","port":8080,"sslPort":null,"payload":["java.lang.Long",5],"registrationTimeUTC":1,"serviceType":"DYNAMIC","uriSpec":null,"enabled":false}"#;
    const CURATOR_NULL: &str = r#"{"name":"svc","id":"id-4","address":"h","port":null,"sslPort":null,"payload":null,"registrationTimeUTC":7,"serviceType":"DYNAMIC_SEQUENTIAL","uriSpec":null}"#;

    #[test]
    fn writes_curators_json_byte_for_byte() {
        let pojo = ServiceInstance::new("svc")
            .with_id("id-1")
            .with_address("10.0.0.1")
            .with_port(8080)
            .with_payload(Details {
                description: "d".into(),
                weight: 3,
            })
            .with_payload_class("Probe$Details")
            .with_registration_time_utc(1234)
            .with_uri_spec(UriSpec::new("{scheme}://foo.com:{port}").unwrap());
        assert_eq!(
            String::from_utf8(pojo.to_json().unwrap()).unwrap(),
            CURATOR_POJO
        );
        assert_eq!(
            ServiceInstance::<Details>::from_json(CURATOR_POJO.as_bytes()).unwrap(),
            pojo
        );

        let long = ServiceInstance::new("svc")
            .with_id("id-1")
            .with_address("10.0.0.1")
            .with_port(8080)
            .with_payload(5i64)
            .with_payload_class("java.lang.Long")
            .with_registration_time_utc(1)
            .with_enabled(false);
        assert_eq!(
            String::from_utf8(long.to_json().unwrap()).unwrap(),
            CURATOR_LONG_DISABLED
        );
        assert_eq!(
            ServiceInstance::<i64>::from_json(CURATOR_LONG_DISABLED.as_bytes()).unwrap(),
            long
        );

        let none: ServiceInstance = ServiceInstance::new("svc")
            .with_id("id-4")
            .with_address("h")
            .with_registration_time_utc(7)
            .with_service_type(ServiceType::DynamicSequential);
        assert_eq!(
            String::from_utf8(none.to_json().unwrap()).unwrap(),
            CURATOR_NULL
        );
        assert_eq!(
            ServiceInstance::<Value>::from_json(CURATOR_NULL.as_bytes()).unwrap(),
            none
        );
    }

    #[test]
    fn reads_leniently_like_curator() {
        let minimal = br#"{"name":"a","id":"b","future":1,"payload":{"k":"v"}}"#;
        let i = ServiceInstance::<Value>::from_json(minimal).unwrap();
        assert!(i.enabled);
        assert_eq!(i.service_type, ServiceType::Dynamic);
        assert_eq!(i.payload, Some(serde_json::json!({"k": "v"})));
        assert_eq!(i.payload_class, None);
        assert!(ServiceInstance::<Value>::from_json(b"[1]").is_err());
        assert!(ServiceInstance::<Value>::from_json(b"not json").is_err());
        let wrong_payload = br#"{"name":"a","id":"b","payload":"text"}"#;
        assert!(ServiceInstance::<Details>::from_json(wrong_payload).is_err());
        // A string payload has no class (a natural JSON type for Jackson).
        let s = ServiceInstance::<String>::from_json(br#"{"name":"a","id":"b","payload":"hi"}"#);
        assert_eq!(s.unwrap().payload.as_deref(), Some("hi"));
    }

    #[test]
    fn uri_specs_parse_and_build_like_curator() {
        let spec = UriSpec::new("{scheme}://foo.com:{ port }{[}x{]}").unwrap();
        assert_eq!(
            spec.parts,
            vec![
                UriPart {
                    value: "scheme".into(),
                    variable: true
                },
                UriPart {
                    value: "://foo.com:".into(),
                    variable: false
                },
                UriPart {
                    value: "port".into(),
                    variable: true
                },
                UriPart {
                    value: "[".into(),
                    variable: true
                },
                UriPart {
                    value: "x".into(),
                    variable: false
                },
                UriPart {
                    value: "]".into(),
                    variable: true
                },
            ]
        );
        let i: ServiceInstance = ServiceInstance::new("s").with_ssl_port(443);
        assert_eq!(spec.build(Some(&i), &HashMap::new()), "https://foo.com:{x}");
        assert_eq!(
            spec.build::<Value>(None, &HashMap::new()),
            "http://foo.com:{x}"
        );
        for bad in ["{a{b}}", "a}", "{a"] {
            assert!(UriSpec::new(bad).is_err(), "{bad}");
        }
    }
}
