//! Backstage's validation rules, in the order the catalog applies them:
//!
//! 1. the entity envelope schema (`Entity.schema.json` + `EntityMeta`),
//!    reported as `Malformed envelope, <path> <ajv message>`;
//! 2. `FieldFormatEntityPolicy` with the default validators of
//!    `makeValidator()` (`KubernetesValidatorFunctions`,
//!    `CommonValidatorFunctions`), reported as
//!    `"<field>" is not valid; expected <expectation> but found "<value>".`;
//! 3. kind recognition: only the built-in kinds with their apiVersions;
//! 4. the kind's JSON schema (`spec` fields), reported in ajv's style
//!    `<path> <message> - <param>: <value>`.
//!
//! A later stage runs only when the earlier ones found nothing, as in
//! Backstage where the first failing policy stops processing; within a stage
//! every violation is reported.

use crate::yaml::pointer_segment;
use proto::ErrorKind;
use serde_json::{Map, Value};

/// One broken rule, with the JSON pointer of the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub kind: ErrorKind,
    pub path: String,
    pub message: String,
}

// ---------------------------------------------------------------------------
// Backstage's validator functions.

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// `KubernetesValidatorFunctions.isValidObjectName`: 1-63 characters,
/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`.
pub fn is_valid_object_name(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.chars()
            .all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.'))
        && s.starts_with(is_alnum)
        && s.ends_with(is_alnum)
}

/// Groups of `allowed` characters separated by single dashes, 1-63 long.
fn dash_separated(s: &str, allowed: impl Fn(char) -> bool) -> bool {
    (1..=63).contains(&s.len())
        && s.split('-')
            .all(|g| !g.is_empty() && g.chars().all(&allowed))
}

/// `CommonValidatorFunctions.isValidDnsLabel` (and `isValidNamespace`):
/// 1-63 characters, `^[a-z0-9]+(\-[a-z0-9]+)*$`.
pub fn is_valid_dns_label(s: &str) -> bool {
    dash_separated(s, |c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// `CommonValidatorFunctions.isValidDnsSubdomain`: 1-253 characters of
/// dot-separated DNS labels.
pub fn is_valid_dns_subdomain(s: &str) -> bool {
    (1..=253).contains(&s.len()) && s.split('.').all(is_valid_dns_label)
}

/// `isValidTag` of `makeValidator()`: 1-63 characters,
/// `^[a-z0-9:+#]+(\-[a-z0-9:+#]+)*$`.
pub fn is_valid_tag(s: &str) -> bool {
    dash_separated(s, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, ':' | '+' | '#')
    })
}

/// `CommonValidatorFunctions.isValidPrefixAndOrSuffix`.
fn is_valid_prefix_and_or_suffix(
    s: &str,
    separator: char,
    prefix: impl Fn(&str) -> bool,
    suffix: impl Fn(&str) -> bool,
) -> bool {
    let parts: Vec<&str> = s.split(separator).collect();
    match parts.as_slice() {
        [only] => suffix(only),
        [p, s] => prefix(p) && suffix(s),
        _ => false,
    }
}

/// `KubernetesValidatorFunctions.isValidApiVersion`.
pub fn is_valid_api_version(s: &str) -> bool {
    is_valid_prefix_and_or_suffix(s, '/', is_valid_dns_subdomain, |n| {
        (1..=63).contains(&n.len()) && n.chars().all(is_alnum)
    })
}

/// `KubernetesValidatorFunctions.isValidKind`: `^[a-zA-Z][a-z0-9A-Z]*$`, 1-63.
pub fn is_valid_kind(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(is_alnum)
}

/// `isValidLabelKey` / `isValidAnnotationKey`: an optional DNS-subdomain
/// prefix and `/`, then an object name.
pub fn is_valid_label_key(s: &str) -> bool {
    is_valid_prefix_and_or_suffix(s, '/', is_valid_dns_subdomain, is_valid_object_name)
}

/// `isValidLabelValue`: empty, or an object name.
pub fn is_valid_label_value(s: &str) -> bool {
    s.is_empty() || is_valid_object_name(s)
}

/// `CommonValidatorFunctions.isNonEmptyString`.
pub fn is_non_empty_string(s: &str) -> bool {
    !s.trim().is_empty()
}

/// An approximation of `CommonValidatorFunctions.isValidUrl`, which accepts
/// what the WHATWG `new URL(value)` parses without a base: a scheme, and for
/// the special schemes other than `file` a non-empty, well-formed host.
pub fn is_valid_url(s: &str) -> bool {
    let s = s.trim_matches(|c: char| c <= ' ');
    let s: String = s
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return false;
    }
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https" | "ws" | "wss" | "ftp") {
        return true;
    }
    let rest = rest.trim_start_matches(['/', '\\']);
    let authority = rest.split(['/', '\\', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(inner) = host_port.strip_prefix('[') {
        match inner.split_once(']') {
            Some((v6, after)) => {
                if v6.is_empty()
                    || !v6
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
                {
                    return false;
                }
                (v6, after.strip_prefix(':').unwrap_or(after))
            }
            None => return false,
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (host_port, ""),
        }
    };
    let port_ok = port.is_empty()
        || (port.chars().all(|c| c.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| p <= 65_535));
    let forbidden = |c: char| {
        c <= ' '
            || matches!(
                c,
                '#' | '/'
                    | ':'
                    | '<'
                    | '>'
                    | '?'
                    | '@'
                    | '['
                    | '\\'
                    | ']'
                    | '^'
                    | '|'
                    | '%'
                    | '\u{7f}'
            )
    };
    let host_ok = !host.is_empty() && (host_port.starts_with('[') || !host.chars().any(forbidden));
    port_ok && host_ok
}

// ---------------------------------------------------------------------------
// The kinds this processor knows.

/// Kinds handled by Backstage's `BuiltinKindsEntityProcessor`, with the
/// apiVersions their schemas enumerate.
const CORE_KINDS: [&str; 8] = [
    "Component",
    "API",
    "Resource",
    "System",
    "Domain",
    "Group",
    "User",
    "Location",
];
const CORE_API_VERSIONS: [&str; 2] = ["backstage.io/v1alpha1", "backstage.io/v1beta1"];
/// `Template.v1beta3.schema.json` of `@backstage/plugin-scaffolder-common`,
/// and the older `backstage.io/v1beta2` Template.
const TEMPLATE_API_VERSIONS: [&str; 2] =
    ["scaffolder.backstage.io/v1beta3", "backstage.io/v1beta2"];

/// Whether the kind/apiVersion pair is one this processor validates.
pub fn is_known_kind(api_version: &str, kind: &str) -> bool {
    if kind == "Template" {
        TEMPLATE_API_VERSIONS.contains(&api_version)
    } else {
        CORE_KINDS.contains(&kind) && CORE_API_VERSIONS.contains(&api_version)
    }
}

// ---------------------------------------------------------------------------
// Checks.

fn js_display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items.iter().map(js_display).collect::<Vec<_>>().join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

fn join(path: &str, key: &str) -> String {
    format!("{path}/{}", pointer_segment(key))
}

fn shown(path: &str) -> &str {
    if path.is_empty() { "<root>" } else { path }
}

#[derive(Default)]
struct Checker {
    out: Vec<Violation>,
}

impl Checker {
    fn push(&mut self, kind: ErrorKind, path: String, message: String) {
        self.out.push(Violation {
            kind,
            path,
            message,
        });
    }

    // -- envelope (Entity.schema.json, EntityMeta.schema.json) -------------

    fn envelope(&mut self, path: &str, message: String) {
        self.push(
            ErrorKind::Validation,
            path.to_string(),
            format!("Malformed envelope, {} {message}", shown(path)),
        );
    }

    fn env_string(&mut self, obj: &Map<String, Value>, path: &str, key: &str, min_len: bool) {
        let Some(v) = obj.get(key) else { return };
        let p = join(path, key);
        match v {
            Value::String(s) if min_len && s.is_empty() => {
                self.envelope(&p, "must NOT have fewer than 1 characters".into())
            }
            Value::String(_) => {}
            _ => self.envelope(&p, "must be string".into()),
        }
    }

    fn env_required<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<&'a Value> {
        let v = obj.get(key);
        if v.is_none() {
            self.envelope(path, format!("must have required property '{key}'"));
        }
        v
    }

    fn env_string_map(&mut self, obj: &Map<String, Value>, path: &str, key: &str) {
        let Some(v) = obj.get(key) else { return };
        let p = join(path, key);
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if !v.is_string() {
                        self.envelope(&join(&p, k), "must be string".into());
                    }
                }
            }
            _ => self.envelope(&p, "must be object".into()),
        }
    }

    fn envelope_checks(&mut self, root: &Value) {
        let Some(obj) = root.as_object() else {
            self.envelope("", "must be object".into());
            return;
        };
        self.env_required(obj, "", "apiVersion");
        self.env_required(obj, "", "kind");
        let metadata = self.env_required(obj, "", "metadata");
        self.env_string(obj, "", "apiVersion", true);
        self.env_string(obj, "", "kind", true);
        for key in obj.keys() {
            if !matches!(
                key.as_str(),
                "apiVersion" | "kind" | "metadata" | "spec" | "relations" | "status"
            ) {
                self.envelope(
                    "",
                    format!("must NOT have additional properties (unknown field {key:?})"),
                );
            }
        }
        if let Some(spec) = obj.get("spec")
            && !spec.is_object()
        {
            self.envelope("/spec", "must be object".into());
        }
        if let Some(rel) = obj.get("relations")
            && !rel.is_array()
        {
            self.envelope("/relations", "must be array".into());
        }
        if let Some(status) = obj.get("status")
            && !status.is_object()
        {
            self.envelope("/status", "must be object".into());
        }
        let Some(metadata) = metadata else { return };
        let Some(meta) = metadata.as_object() else {
            self.envelope("/metadata", "must be object".into());
            return;
        };
        let m = "/metadata";
        self.env_required(meta, m, "name");
        for key in ["name", "namespace", "uid", "etag"] {
            self.env_string(meta, m, key, true);
        }
        self.env_string(meta, m, "title", false);
        self.env_string(meta, m, "description", false);
        if let Some(g) = meta.get("generation") {
            match g.as_i64().or_else(|| g.as_u64().map(|_| i64::MAX)) {
                Some(n) if n >= 1 => {}
                Some(_) => self.envelope(&join(m, "generation"), "must be >= 1".into()),
                None => self.envelope(&join(m, "generation"), "must be integer".into()),
            }
        }
        self.env_string_map(meta, m, "labels");
        self.env_string_map(meta, m, "annotations");
        if let Some(tags) = meta.get("tags") {
            let p = join(m, "tags");
            match tags {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let ip = format!("{p}/{i}");
                        match item {
                            Value::String(s) if s.is_empty() => {
                                self.envelope(&ip, "must NOT have fewer than 1 characters".into())
                            }
                            Value::String(_) => {}
                            _ => self.envelope(&ip, "must be string".into()),
                        }
                    }
                }
                _ => self.envelope(&p, "must be array".into()),
            }
        }
        if let Some(links) = meta.get("links") {
            let p = join(m, "links");
            match links {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let ip = format!("{p}/{i}");
                        match item {
                            Value::Object(link) => {
                                self.env_required(link, &ip, "url");
                                for key in ["url", "title", "icon", "type"] {
                                    self.env_string(link, &ip, key, true);
                                }
                            }
                            _ => self.envelope(&ip, "must be object".into()),
                        }
                    }
                }
                _ => self.envelope(&p, "must be array".into()),
            }
        }
    }

    // -- FieldFormatEntityPolicy -------------------------------------------

    fn format(&mut self, path: String, field: &str, expectation: &str, value: &Value) {
        self.push(
            ErrorKind::Validation,
            path,
            format!(
                "\"{field}\" is not valid; expected {expectation} but found \"{}\".",
                js_display(value)
            ),
        );
    }

    fn field_format_checks(&mut self, root: &Value) {
        const OBJECT_NAME: &str = "a string that is sequences of [a-zA-Z0-9] separated by any of [-_.], at most 63 characters in total";
        const PREFIX_SUFFIX: &str = "a valid prefix and/or suffix";
        const DNS_LABEL: &str = "a string that is sequences of [a-z0-9] separated by [-], at most 63 characters in total";
        const TAG: &str = "a string that is sequences of [a-z0-9+#] separated by [-], at most 63 characters in total";
        const KIND: &str =
            "a string that is a sequence of [a-zA-Z][a-z0-9A-Z], at most 63 characters in total";
        const URL: &str = "a string that is a valid url";
        const NON_EMPTY: &str = "a non empty string";

        let str_of = |v: &Value| v.as_str().map(str::to_string).unwrap_or_default();
        let api_version = &root["apiVersion"];
        if !is_valid_api_version(&str_of(api_version)) {
            self.format(
                "/apiVersion".into(),
                "apiVersion",
                PREFIX_SUFFIX,
                api_version,
            );
        }
        let kind = &root["kind"];
        if !is_valid_kind(&str_of(kind)) {
            self.format("/kind".into(), "kind", KIND, kind);
        }
        let meta = &root["metadata"];
        let name = &meta["name"];
        if !is_valid_object_name(&str_of(name)) {
            self.format("/metadata/name".into(), "metadata.name", OBJECT_NAME, name);
        }
        if let Some(ns) = meta.get("namespace")
            && !is_valid_dns_label(&str_of(ns))
        {
            self.format(
                "/metadata/namespace".into(),
                "metadata.namespace",
                DNS_LABEL,
                ns,
            );
        }
        if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
            for (k, v) in labels {
                let path = join("/metadata/labels", k);
                if !is_valid_label_key(k) {
                    self.format(
                        path.clone(),
                        &format!("labels.{k}"),
                        PREFIX_SUFFIX,
                        &Value::String(k.clone()),
                    );
                }
                if !is_valid_label_value(&str_of(v)) {
                    self.format(path, &format!("labels.{k}"), OBJECT_NAME, v);
                }
            }
        }
        if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
            for k in annotations.keys() {
                if !is_valid_label_key(k) {
                    self.format(
                        join("/metadata/annotations", k),
                        &format!("annotations.{k}"),
                        PREFIX_SUFFIX,
                        &Value::String(k.clone()),
                    );
                }
            }
        }
        if let Some(tags) = meta.get("tags").and_then(Value::as_array) {
            for (i, tag) in tags.iter().enumerate() {
                if !is_valid_tag(&str_of(tag)) {
                    self.format(
                        format!("/metadata/tags/{i}"),
                        &format!("tags.{i}"),
                        TAG,
                        tag,
                    );
                }
            }
        }
        if let Some(links) = meta.get("links").and_then(Value::as_array) {
            for (i, link) in links.iter().enumerate() {
                let url = &link["url"];
                if !is_valid_url(&str_of(url)) {
                    self.format(
                        format!("/metadata/links/{i}/url"),
                        &format!("links.{i}.url"),
                        URL,
                        url,
                    );
                }
                for key in ["title", "icon"] {
                    if let Some(v) = link.get(key)
                        && !is_non_empty_string(&str_of(v))
                    {
                        self.format(
                            format!("/metadata/links/{i}/{key}"),
                            &format!("links.{i}.{key}"),
                            NON_EMPTY,
                            v,
                        );
                    }
                }
            }
        }
    }

    // -- kind schemas ---------------------------------------------------------

    fn schema(&mut self, path: &str, message: &str, param: &str, value: &str) {
        self.push(
            ErrorKind::Validation,
            path.to_string(),
            format!("{} {message} - {param}: {value}", shown(path)),
        );
    }

    fn check_type(&mut self, path: &str, v: &Value, ty: &Ty) {
        match ty {
            Ty::Str { placeholder } => match v {
                Value::String(s) if s.is_empty() => {
                    self.schema(path, "must NOT have fewer than 1 characters", "limit", "1")
                }
                Value::String(_) => {}
                _ if *placeholder && is_placeholder(v) => {}
                _ => self.schema(path, "must be string", "type", "string"),
            },
            Ty::AnyStr => {
                if !v.is_string() {
                    self.schema(path, "must be string", "type", "string")
                }
            }
            Ty::StrOrBool => {
                if !(v.is_string() || v.is_boolean()) {
                    self.schema(path, "must be string,boolean", "type", "string,boolean")
                }
            }
            Ty::StrArray => match v {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check_type(
                            &format!("{path}/{i}"),
                            item,
                            &Ty::Str { placeholder: false },
                        );
                    }
                }
                _ => self.schema(path, "must be array", "type", "array"),
            },
            Ty::AnyObject => {
                if !v.is_object() {
                    self.schema(path, "must be object", "type", "object")
                }
            }
            Ty::Object {
                fields,
                required,
                rest,
            } => match v {
                Value::Object(obj) => {
                    self.check_object(path, obj, fields, required, rest.as_deref())
                }
                _ => self.schema(path, "must be object", "type", "object"),
            },
            Ty::ArrayOf(item_ty) => match v {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check_type(&format!("{path}/{i}"), item, item_ty);
                    }
                }
                _ => self.schema(path, "must be array", "type", "array"),
            },
            Ty::ObjectOrObjectArray => {
                let ok = match v {
                    Value::Object(_) => true,
                    Value::Array(items) => items.iter().all(Value::is_object),
                    _ => false,
                };
                if !ok {
                    self.schema(
                        path,
                        "must match exactly one schema in oneOf",
                        "passingSchemas",
                        "null",
                    );
                }
            }
        }
    }

    fn check_object(
        &mut self,
        path: &str,
        obj: &Map<String, Value>,
        fields: &[(&str, Ty)],
        required: &[&str],
        rest: Option<&Ty>,
    ) {
        for key in required {
            if !obj.contains_key(*key) {
                self.schema(
                    path,
                    &format!("must have required property '{key}'"),
                    "missingProperty",
                    key,
                );
            }
        }
        for (key, v) in obj {
            match fields.iter().find(|(name, _)| name == key) {
                Some((_, ty)) => self.check_type(&join(path, key), v, ty),
                None => {
                    if let Some(rest) = rest {
                        self.check_type(&join(path, key), v, rest);
                    }
                }
            }
        }
    }

    fn kind_checks(&mut self, root: &Map<String, Value>, api_version: &str, kind: &str) {
        let Some(spec) = root.get("spec") else {
            self.schema(
                "",
                "must have required property 'spec'",
                "missingProperty",
                "spec",
            );
            return;
        };
        let Some(spec) = spec.as_object() else {
            self.schema("/spec", "must be object", "type", "object");
            return;
        };
        let (fields, required) = kind_spec(api_version, kind);
        self.check_object("/spec", spec, &fields, required, None);
    }
}

/// A Backstage placeholder (`$text`, `$json`, `$yaml`) that the catalog
/// resolves by reading another file; this stage does no I/O and leaves it as
/// written.
fn is_placeholder(v: &Value) -> bool {
    match v.as_object() {
        Some(obj) if obj.len() == 1 => obj
            .iter()
            .all(|(k, v)| matches!(k.as_str(), "$text" | "$json" | "$yaml") && v.is_string()),
        _ => false,
    }
}

/// The JSON-schema types used by the kind schemas.
#[derive(Debug, Clone)]
enum Ty {
    /// `{"type": "string", "minLength": 1}`; `placeholder` accepts an
    /// unresolved `$text`-style placeholder instead.
    Str {
        placeholder: bool,
    },
    /// `{"type": "string"}`.
    AnyStr,
    /// `{"type": ["string", "boolean"]}`.
    StrOrBool,
    /// `{"type": "array", "items": {"type": "string", "minLength": 1}}`.
    StrArray,
    /// `{"type": "object"}`.
    AnyObject,
    /// An object with typed optional properties.
    Object {
        fields: Vec<(&'static str, Ty)>,
        required: &'static [&'static str],
        rest: Option<Box<Ty>>,
    },
    ArrayOf(Box<Ty>),
    /// Template `parameters`: an object, or an array of objects.
    ObjectOrObjectArray,
}

const STR: Ty = Ty::Str { placeholder: true };
/// Entity references: placeholders are not refs.
const REF: Ty = Ty::Str { placeholder: false };

fn strings(names: &[&'static str]) -> Vec<(&'static str, Ty)> {
    names.iter().map(|n| (*n, STR)).collect()
}

fn object(fields: Vec<(&'static str, Ty)>) -> Ty {
    Ty::Object {
        fields,
        required: &[],
        rest: None,
    }
}

/// The `spec` properties and required fields of each kind's schema
/// (`packages/catalog-model/src/schema/kinds/*.schema.json`, and
/// `plugins/scaffolder-common/src/Template.v1beta3.schema.json`), plus the
/// relation fields `BuiltinKindsEntityProcessor` reads (`dependencyOf`,
/// `subdomainOf`), typed like their siblings.
fn kind_spec(api_version: &str, kind: &str) -> (Vec<(&'static str, Ty)>, &'static [&'static str]) {
    match kind {
        "Component" => (
            vec![
                ("type", STR),
                ("lifecycle", STR),
                ("owner", REF),
                ("system", REF),
                ("subcomponentOf", REF),
                ("providesApis", Ty::StrArray),
                ("consumesApis", Ty::StrArray),
                ("dependsOn", Ty::StrArray),
                ("dependencyOf", Ty::StrArray),
            ],
            &["type", "lifecycle", "owner"],
        ),
        "API" => (
            vec![
                ("type", STR),
                ("lifecycle", STR),
                ("owner", REF),
                ("system", REF),
                ("definition", STR),
            ],
            &["type", "lifecycle", "owner", "definition"],
        ),
        "Resource" => (
            vec![
                ("type", STR),
                ("owner", REF),
                ("dependsOn", Ty::StrArray),
                ("dependencyOf", Ty::StrArray),
                ("system", REF),
            ],
            &["type", "owner"],
        ),
        "System" => (
            vec![("owner", REF), ("domain", REF), ("type", STR)],
            &["owner"],
        ),
        "Domain" => (
            vec![("owner", REF), ("subdomainOf", REF), ("type", STR)],
            &["owner"],
        ),
        "Group" => (
            vec![
                ("type", STR),
                (
                    "profile",
                    object(strings(&["displayName", "email", "picture"])),
                ),
                ("parent", REF),
                ("children", Ty::StrArray),
                ("members", Ty::StrArray),
            ],
            &["type", "children"],
        ),
        "User" => {
            let mut profile = strings(&[
                "displayName",
                "email",
                "picture",
                "pronouns",
                "jobTitle",
                "startDateISO",
                "manager",
                "timezoneISO",
                "location",
                "directMessageURL",
            ]);
            profile.push((
                "externalHandles",
                object(strings(&[
                    "facebook",
                    "github",
                    "instagram",
                    "spotify",
                    "twitter",
                    "youtube",
                ])),
            ));
            (
                vec![("profile", object(profile)), ("memberOf", Ty::StrArray)],
                &["memberOf"],
            )
        }
        "Location" => (
            vec![("type", STR), ("target", STR), ("targets", Ty::StrArray)],
            &[],
        ),
        "Template" => {
            let v1beta2 = api_version == "backstage.io/v1beta2";
            let step = Ty::Object {
                fields: vec![
                    ("id", Ty::AnyStr),
                    ("name", Ty::AnyStr),
                    ("action", Ty::AnyStr),
                    (if v1beta2 { "parameters" } else { "input" }, Ty::AnyObject),
                    ("if", Ty::StrOrBool),
                ],
                required: &["action"],
                rest: None,
            };
            let link = Ty::Object {
                fields: strings(&["url", "entityRef", "title", "icon"]),
                required: if v1beta2 { &["url"] } else { &[] },
                rest: None,
            };
            let output = Ty::Object {
                fields: vec![("links", Ty::ArrayOf(Box::new(link)))],
                required: &[],
                rest: Some(Box::new(Ty::AnyStr)),
            };
            (
                vec![
                    ("type", STR),
                    ("owner", REF),
                    ("parameters", Ty::ObjectOrObjectArray),
                    ("steps", Ty::ArrayOf(Box::new(step))),
                    ("output", output),
                ],
                &["type", "steps"],
            )
        }
        _ => (Vec::new(), &[]),
    }
}

/// The outcome of validating one document.
#[derive(Debug)]
pub(crate) enum Verdict {
    Valid,
    Invalid(Vec<Violation>),
}

/// Validates a document as Backstage would before accepting the entity.
pub(crate) fn validate(root: &Value) -> Verdict {
    let mut c = Checker::default();
    c.envelope_checks(root);
    if !c.out.is_empty() {
        return Verdict::Invalid(c.out);
    }
    c.field_format_checks(root);
    if !c.out.is_empty() {
        return Verdict::Invalid(c.out);
    }
    let api_version = root["apiVersion"].as_str().unwrap_or_default();
    let kind = root["kind"].as_str().unwrap_or_default();
    if !is_known_kind(api_version, kind) {
        let mut hint = String::new();
        if let Some(known) = CORE_KINDS
            .iter()
            .chain(std::iter::once(&"Template"))
            .find(|k| k.eq_ignore_ascii_case(kind) && **k != kind)
        {
            hint = format!(" (kinds are case-sensitive: did you mean {known:?}?)");
        }
        return Verdict::Invalid(vec![Violation {
            kind: ErrorKind::UnknownKind,
            path: "/kind".into(),
            message: format!(
                "Unsupported kind/apiVersion: no processor recognized kind {kind:?} with apiVersion {api_version:?} as valid, possibly caused by a foreign kind or apiVersion{hint}"
            ),
        }]);
    }
    if let Some(obj) = root.as_object() {
        c.kind_checks(obj, api_version, kind);
    }
    if c.out.is_empty() {
        Verdict::Valid
    } else {
        Verdict::Invalid(c.out)
    }
}

/// A best-effort `kind:namespace/name` for an error about a document.
pub(crate) fn best_effort_ref(root: &Value) -> Option<String> {
    let name = root["metadata"]["name"].as_str()?;
    let kind = root["kind"].as_str().unwrap_or("unknown");
    let namespace = root["metadata"]["namespace"].as_str().unwrap_or("default");
    Some(format!(
        "{}:{}/{}",
        kind.to_ascii_lowercase(),
        namespace.to_ascii_lowercase(),
        name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        for ok in ["a", "a1", "A-b_c.d", "9", &"x".repeat(63)] {
            assert!(is_valid_object_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a_",
            ".a",
            "a b",
            "Bad Name!",
            "ä",
            &"x".repeat(64),
        ] {
            assert!(!is_valid_object_name(bad), "{bad}");
        }
    }

    #[test]
    fn dns_labels_and_subdomains() {
        for ok in ["a", "a-b", "a1-2b", &"a".repeat(63)] {
            assert!(is_valid_dns_label(ok), "{ok}");
        }
        for bad in ["", "A", "a--b", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_valid_dns_label(bad), "{bad}");
        }
        assert!(is_valid_dns_subdomain("backstage.io"));
        assert!(is_valid_dns_subdomain("a.b-c.d"));
        assert!(!is_valid_dns_subdomain("a..b"));
        assert!(!is_valid_dns_subdomain("Backstage.io"));
        assert!(!is_valid_dns_subdomain(&format!("{}.a", "a.".repeat(127))));
    }

    #[test]
    fn tags() {
        for ok in ["java", "c++", "c#", "lang:go", "a-b", &"t".repeat(63)] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in [
            "",
            "Java",
            "a_b",
            "a.b",
            "a--b",
            "-a",
            "a-",
            &"t".repeat(64),
        ] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
    }

    #[test]
    fn api_versions_kinds_and_keys() {
        assert!(is_valid_api_version("backstage.io/v1alpha1"));
        assert!(is_valid_api_version("v1"));
        assert!(!is_valid_api_version("a/b/c"));
        assert!(!is_valid_api_version("Backstage.io/v1"));
        assert!(!is_valid_api_version("backstage.io/v1-alpha"));
        assert!(is_valid_kind("Component"));
        assert!(!is_valid_kind("1Component"));
        assert!(!is_valid_kind("Com-ponent"));
        assert!(is_valid_label_key("backstage.io/managed-by-location"));
        assert!(is_valid_label_key("team"));
        assert!(!is_valid_label_key("Example.com/x"));
        assert!(!is_valid_label_key("a/b/c"));
        assert!(!is_valid_label_key("/x"));
        assert!(is_valid_label_value(""));
        assert!(!is_valid_label_value("not ok"));
    }

    #[test]
    fn urls() {
        for ok in [
            "https://example.com",
            "http://localhost:3000/x?y#z",
            "https://user:pw@host.example/path",
            "http://[::1]:8080/",
            "mailto:someone@example.com",
            "file:///etc/hosts",
            "slack:channel",
        ] {
            assert!(is_valid_url(ok), "{ok}");
        }
        for bad in [
            "",
            "example.com",
            "/relative",
            "http://",
            "https://exa mple.com",
            "http://host:port/",
            "1http://x",
        ] {
            assert!(!is_valid_url(bad), "{bad}");
        }
    }

    #[test]
    fn placeholders() {
        assert!(is_placeholder(
            &serde_json::json!({"$text": "./openapi.yaml"})
        ));
        assert!(!is_placeholder(&serde_json::json!({"$text": 1})));
        assert!(!is_placeholder(&serde_json::json!({"a": "b"})));
    }
}
