//! Structural validation of a FHIR R4 document Bundle that follows the HL7
//! International Patient Summary (IPS, <https://hl7.org/fhir/uv/ips/>),
//! over plain `serde_json::Value`s.
//!
//! Clients run [`validate`] on a bundle before they encrypt it, and after
//! they decrypt one; the gateway only ever sees the JWE (see
//! `xgate_server::medical::jwe`). This is not a FHIR profile validator: it checks the
//! document structure a receiving clinician's software relies on, in this
//! order, and reports the first thing wrong:
//!
//! 1. a JSON object, `resourceType` `Bundle`, `type` `document`, with an
//!    `identifier` and a `timestamp` (FHIR R4 §3.3.1, Documents);
//! 2. every `entry` has a unique `fullUrl` and a `resource` with a
//!    `resourceType`;
//! 3. the first entry is a Composition typed LOINC 60591-5 (Patient
//!    summary Document), whose `subject` is a Patient in the bundle;
//! 4. every `reference` anywhere in any resource resolves inside the
//!    bundle (R4 Bundle §2.36.4.1, restricted to what a document needs):
//!    `urn:uuid:` and other absolute references match a `fullUrl`
//!    exactly, `Type/id` matches the entry with that `resourceType` and
//!    `id`, and `#id` a contained resource;
//! 5. each section (by LOINC code) holds either entry references, to
//!    resources of the types its IPS section allows, or an `emptyReason`;
//!    a known section appears once; every required [`Section`] is present;
//! 6. section resources with a `subject` or `patient` reference are about
//!    the Composition's subject.
//!
//! A bundle holds personal data, so a [`BundleError`] names the JSON path
//! at fault (`entry[3].resource.subject.reference`) and never a value.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

pub use xgate_server::medical::section::{Section, UnknownSection};

/// The LOINC code system URI.
const LOINC: &str = "http://loinc.org";
/// The Composition type of an IPS document: "Patient summary Document".
const PATIENT_SUMMARY: &str = "60591-5";

/// What a valid bundle holds, without any of its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Entries in the bundle, the Composition and Patient included.
    pub resources: usize,
    /// The known sections, in the Composition's order.
    pub sections: Vec<SectionSummary>,
}

/// One section of a valid bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SectionSummary {
    /// Which section.
    pub section: Section,
    /// How many entries it refers to.
    pub entries: usize,
    /// Whether it is empty and says why (`emptyReason`).
    pub empty_reason: bool,
}

/// Why a bundle is not a valid IPS document. Paths are relative to the
/// bundle (`entry[0].resource.section[2].entry[1].reference`); no message
/// quotes a value from the bundle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The bytes are not JSON.
    #[error("not JSON (syntax error at line {line}, column {column})")]
    NotJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// A member the document needs is absent, or of the wrong JSON type.
    #[error("{path}: missing, or not {expected}")]
    Missing {
        /// Where.
        path: String,
        /// What should be there.
        expected: &'static str,
    },
    /// A member has a value not allowed there.
    #[error("{path}: {rule}")]
    Invalid {
        /// Where.
        path: String,
        /// What the value must be.
        rule: &'static str,
    },
    /// Two entries have the same `fullUrl`.
    #[error("{path}: same fullUrl as entry[{first}]")]
    DuplicateFullUrl {
        /// The second entry's `fullUrl`.
        path: String,
        /// The index of the first entry with it.
        first: usize,
    },
    /// A reference resolves to nothing in the bundle.
    #[error("{path}: resolves to no entry of the bundle")]
    Unresolved {
        /// The `reference` member.
        path: String,
    },
    /// A `Type/id` reference matches more than one entry.
    #[error("{path}: matches more than one entry of the bundle")]
    Ambiguous {
        /// The `reference` member.
        path: String,
    },
    /// A reference resolves to a resource of a type not allowed there.
    #[error("{path}: must refer to {expected}")]
    WrongTarget {
        /// The `reference` member.
        path: String,
        /// The resource types allowed, for people.
        expected: String,
    },
    /// A section resource is about someone other than the Composition's
    /// subject.
    #[error("{path}: refers to a patient other than the Composition's subject")]
    OtherPatient {
        /// The resource's `subject` or `patient` reference.
        path: String,
    },
    /// A section has both entries and an `emptyReason`, or neither.
    #[error("{path}: needs entries or an emptyReason, and has {}", if *.both { "both" } else { "neither" })]
    SectionContent {
        /// The section.
        path: String,
        /// Whether it has both (or neither).
        both: bool,
    },
    /// A known section appears more than once.
    #[error("{path}: a second {section} section")]
    DuplicateSection {
        /// The second occurrence.
        path: String,
        /// Which section.
        section: Section,
    },
    /// A required section is absent from the Composition.
    #[error("entry[0].resource.section: no {} section (LOINC {}), which is required", .0.title(), .0.loinc())]
    MissingSection(Section),
}

/// Validates `bundle`, a FHIR R4 IPS document in JSON, and requires each
/// of `required` among its Composition's sections.
///
/// # Errors
///
/// The first rule broken, in the order of the module documentation.
pub fn validate(bundle: &[u8], required: &[Section]) -> Result<Summary, BundleError> {
    let root: Value = serde_json::from_slice(bundle).map_err(|e| BundleError::NotJson {
        line: e.line(),
        column: e.column(),
    })?;
    let root = root
        .as_object()
        .ok_or_else(|| missing("(root)", "an object"))?;
    check_bundle(root)?;
    let entries = match root.get("entry") {
        Some(Value::Array(entries)) if !entries.is_empty() => entries,
        _ => return Err(missing("entry", "a non-empty array")),
    };
    let index = Index::build(entries)?;
    let composition = &index.resources[0];
    let patient = check_composition(&index, composition)?;
    for (i, resource) in index.resources.iter().enumerate() {
        let mut path = vec![Seg::Entry(i)];
        check_references(&index, resource, resource, &mut path)?;
    }
    let sections = check_sections(&index, composition, patient, required)?;
    Ok(Summary {
        resources: entries.len(),
        sections,
    })
}

/// Rule 1: the Bundle itself.
fn check_bundle(root: &Map<String, Value>) -> Result<(), BundleError> {
    if root.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(invalid("resourceType", "must be Bundle"));
    }
    if root.get("type").and_then(Value::as_str) != Some("document") {
        return Err(invalid("type", "must be document"));
    }
    if !root.get("identifier").is_some_and(Value::is_object) {
        return Err(missing("identifier", "an Identifier object"));
    }
    if root
        .get("timestamp")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(missing("timestamp", "a non-empty string"));
    }
    Ok(())
}

/// Rule 3: the Composition, and the Patient it is about, whose entry index
/// is returned.
fn check_composition(
    index: &Index,
    composition: &Map<String, Value>,
) -> Result<usize, BundleError> {
    if kind_of(composition) != "Composition" {
        return Err(invalid(
            "entry[0].resource.resourceType",
            "must be Composition (a document starts with one)",
        ));
    }
    let typed = composition
        .get("type")
        .and_then(|t| t.get("coding"))
        .and_then(Value::as_array)
        .is_some_and(|codings| {
            codings
                .iter()
                .any(|c| loinc_code(c) == Some(PATIENT_SUMMARY))
        });
    if !typed {
        return Err(invalid(
            "entry[0].resource.type.coding",
            "must include LOINC 60591-5 (Patient summary Document)",
        ));
    }
    let path = "entry[0].resource.subject.reference";
    let reference = composition
        .get("subject")
        .and_then(|s| s.get("reference"))
        .and_then(Value::as_str)
        .ok_or_else(|| missing(path, "a string"))?;
    let patient = index.resolve(reference, || path.to_owned())?;
    if kind_of(index.resources[patient]) != "Patient" {
        return Err(BundleError::WrongTarget {
            path: path.to_owned(),
            expected: "a Patient".into(),
        });
    }
    Ok(patient)
}

/// Rules 5 and 6: the Composition's sections.
fn check_sections(
    index: &Index,
    composition: &Map<String, Value>,
    patient: usize,
    required: &[Section],
) -> Result<Vec<SectionSummary>, BundleError> {
    let sections = match composition.get("section") {
        Some(Value::Array(sections)) if !sections.is_empty() => sections,
        _ => return Err(missing("entry[0].resource.section", "a non-empty array")),
    };
    let mut summaries: Vec<SectionSummary> = Vec::new();
    for (s, section) in sections.iter().enumerate() {
        let path = format!("entry[0].resource.section[{s}]");
        let section = section
            .as_object()
            .ok_or_else(|| missing(&path, "an object"))?;
        let known = section_kind(section, &path)?;
        let refs = match section.get("entry") {
            None => &[][..],
            Some(Value::Array(refs)) => refs,
            Some(_) => return Err(missing(format!("{path}.entry"), "an array")),
        };
        let empty_reason = section.contains_key("emptyReason");
        if refs.is_empty() != empty_reason {
            return Err(BundleError::SectionContent {
                path,
                both: empty_reason,
            });
        }
        for (j, entry) in refs.iter().enumerate() {
            let ref_path = format!("{path}.entry[{j}].reference");
            let reference = entry
                .get("reference")
                .and_then(Value::as_str)
                .ok_or_else(|| missing(&ref_path, "a string"))?;
            let target = index.resolve(reference, || ref_path.clone())?;
            let resource = &index.resources[target];
            if let Some(known) = known
                && !known.resource_types().contains(&kind_of(resource))
            {
                return Err(BundleError::WrongTarget {
                    path: ref_path,
                    expected: known.resource_types().join(" or "),
                });
            }
            check_about_patient(index, target, patient)?;
        }
        if let Some(known) = known {
            if summaries.iter().any(|s| s.section == known) {
                return Err(BundleError::DuplicateSection {
                    path,
                    section: known,
                });
            }
            summaries.push(SectionSummary {
                section: known,
                entries: refs.len(),
                empty_reason,
            });
        }
    }
    if let Some(absent) = required
        .iter()
        .find(|r| !summaries.iter().any(|s| s.section == **r))
    {
        return Err(BundleError::MissingSection(*absent));
    }
    Ok(summaries)
}

/// The known section a Composition section is, by its LOINC code; `None`
/// for a section with no code of ours (allowed, and checked only for
/// structure and references).
fn section_kind(section: &Map<String, Value>, path: &str) -> Result<Option<Section>, BundleError> {
    let codings = section
        .get("code")
        .and_then(|c| c.get("coding"))
        .and_then(Value::as_array)
        .ok_or_else(|| missing(format!("{path}.code.coding"), "an array"))?;
    Ok(codings
        .iter()
        .filter_map(loinc_code)
        .find_map(Section::from_loinc))
}

/// Rule 6: a section resource's `subject` and `patient`, where it has
/// them, must be the document's Patient. References were all resolved by
/// rule 4 already.
fn check_about_patient(index: &Index, target: usize, patient: usize) -> Result<(), BundleError> {
    for member in ["subject", "patient"] {
        let Some(reference) = index.resources[target]
            .get(member)
            .and_then(|m| m.get("reference"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let path = || format!("entry[{target}].resource.{member}.reference");
        if index.resolve(reference, path)? != patient {
            return Err(BundleError::OtherPatient { path: path() });
        }
    }
    Ok(())
}

/// Rule 4: every object under `value` with a string `reference` resolves,
/// `#id` within `resource` (the entry's resource, which holds `contained`).
fn check_references<'a>(
    index: &Index,
    resource: &Map<String, Value>,
    value: &'a Map<String, Value>,
    path: &mut Vec<Seg<'a>>,
) -> Result<(), BundleError> {
    if let Some(Value::String(reference)) = value.get("reference") {
        let at = |path: &[Seg]| render(path) + ".reference";
        if let Some(id) = reference.strip_prefix('#') {
            // "#" alone is the container itself (R4 §2.3.0.4, contained).
            let found = id.is_empty()
                || resource
                    .get("contained")
                    .and_then(Value::as_array)
                    .is_some_and(|c| {
                        c.iter()
                            .any(|r| r.get("id").and_then(Value::as_str) == Some(id))
                    });
            if !found {
                return Err(BundleError::Unresolved { path: at(path) });
            }
        } else {
            index.resolve(reference, || at(path))?;
        }
    }
    for (key, child) in value {
        path.push(Seg::Key(key));
        descend(index, resource, child, path)?;
        path.pop();
    }
    Ok(())
}

/// [`check_references`] for any JSON value.
fn descend<'a>(
    index: &Index,
    resource: &Map<String, Value>,
    value: &'a Value,
    path: &mut Vec<Seg<'a>>,
) -> Result<(), BundleError> {
    match value {
        Value::Object(object) => check_references(index, resource, object, path),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                descend(index, resource, item, path)?;
                path.pop();
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The bundle's resources, and how references find them (rule 2).
struct Index<'a> {
    /// `entry[i].resource`, in order.
    resources: Vec<&'a Map<String, Value>>,
    /// `fullUrl` to entry index.
    full_urls: HashMap<&'a str, usize>,
    /// (`resourceType`, `id`) to entry index; `None` when several entries
    /// share them (possible with absolute fullUrls on different servers).
    type_ids: HashMap<(&'a str, &'a str), Option<usize>>,
}

impl<'a> Index<'a> {
    fn build(entries: &'a [Value]) -> Result<Index<'a>, BundleError> {
        let mut index = Index {
            resources: Vec::with_capacity(entries.len()),
            full_urls: HashMap::with_capacity(entries.len()),
            type_ids: HashMap::with_capacity(entries.len()),
        };
        for (i, entry) in entries.iter().enumerate() {
            let full_url = entry
                .get("fullUrl")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
                .ok_or_else(|| missing(format!("entry[{i}].fullUrl"), "a non-empty string"))?;
            if let Some(first) = index.full_urls.insert(full_url, i) {
                return Err(BundleError::DuplicateFullUrl {
                    path: format!("entry[{i}].fullUrl"),
                    first,
                });
            }
            let resource = entry
                .get("resource")
                .and_then(Value::as_object)
                .ok_or_else(|| missing(format!("entry[{i}].resource"), "an object"))?;
            let kind = resource
                .get("resourceType")
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty())
                .ok_or_else(|| {
                    missing(
                        format!("entry[{i}].resource.resourceType"),
                        "a non-empty string",
                    )
                })?;
            if let Some(id) = resource.get("id").and_then(Value::as_str) {
                index
                    .type_ids
                    .entry((kind, id))
                    .and_modify(|slot| *slot = None)
                    .or_insert(Some(i));
            }
            index.resources.push(resource);
        }
        Ok(index)
    }

    /// The entry `reference` names: a `fullUrl` exactly, or else a
    /// relative `Type/id` (a version suffix `/_history/v` ignored).
    fn resolve(&self, reference: &str, path: impl Fn() -> String) -> Result<usize, BundleError> {
        if let Some(&i) = self.full_urls.get(reference) {
            return Ok(i);
        }
        let unversioned = reference.split("/_history/").next().unwrap_or(reference);
        let type_id = unversioned
            .split_once('/')
            .filter(|(kind, id)| !kind.contains(':') && !id.is_empty() && !id.contains('/'));
        match type_id.and_then(|key| self.type_ids.get(&key)) {
            Some(Some(i)) => Ok(*i),
            Some(None) => Err(BundleError::Ambiguous { path: path() }),
            None => Err(BundleError::Unresolved { path: path() }),
        }
    }
}

/// One step of a JSON path inside `entry[i].resource`.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Entry(usize),
    Key(&'a str),
    Index(usize),
}

/// A path for an error message. Keys come from the bundle: one that is
/// not a plain FHIR element name is shown as `?`, so a message can never
/// carry text someone put in a key.
fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Entry(i) => out.push_str(&format!("entry[{i}].resource")),
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Key(k)
                if !k.is_empty()
                    && k.len() <= 64
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                out.push('.');
                out.push_str(k);
            }
            Seg::Key(_) => out.push_str(".?"),
        }
    }
    out
}

/// The resource's `resourceType` (checked present by [`Index::build`]).
fn kind_of(resource: &Map<String, Value>) -> &str {
    resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The code of a Coding whose system is LOINC.
fn loinc_code(coding: &Value) -> Option<&str> {
    (coding.get("system").and_then(Value::as_str) == Some(LOINC))
        .then(|| coding.get("code").and_then(Value::as_str))
        .flatten()
}

fn missing(path: impl Into<String>, expected: &'static str) -> BundleError {
    BundleError::Missing {
        path: path.into(),
        expected,
    }
}

fn invalid(path: impl Into<String>, rule: &'static str) -> BundleError {
    BundleError::Invalid {
        path: path.into(),
        rule,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const AVERY: &str = include_str!("../../tests/fixtures/ips/ips-avery.json");
    const JORDAN: &str = include_str!("../../tests/fixtures/ips/ips-jordan.json");
    const LARGE: &str = include_str!("../../tests/fixtures/ips/ips-large.json");
    /// The sections the IPS itself requires.
    const CORE: [Section; 3] = [Section::Allergies, Section::Medications, Section::Problems];

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("fixture is JSON")
    }

    fn check(bundle: &Value, required: &[Section]) -> Result<Summary, BundleError> {
        validate(&serde_json::to_vec(bundle).expect("json"), required)
    }

    /// The error for `bundle`, whose message must not quote `secret`.
    fn rejects(bundle: &Value, required: &[Section]) -> BundleError {
        let err = check(bundle, required).expect_err("invalid");
        let message = err.to_string();
        for value in ["Testperson", "Avery", "urn:uuid", "SECRET"] {
            assert!(!message.contains(value), "quotes a value: {message}");
        }
        err
    }

    /// Index of the first entry whose resource is a `kind`.
    fn entry_of(bundle: &Value, kind: &str) -> usize {
        bundle["entry"]
            .as_array()
            .expect("entries")
            .iter()
            .position(|e| e["resource"]["resourceType"] == kind)
            .expect("present")
    }

    /// The Composition's section with this code.
    fn section(bundle: &mut Value, section: Section) -> &mut Value {
        bundle["entry"][0]["resource"]["section"]
            .as_array_mut()
            .expect("sections")
            .iter_mut()
            .find(|s| s["code"]["coding"][0]["code"] == section.loinc())
            .expect("section")
    }

    #[test]
    fn accepts_avery_with_the_four_core_sections_populated() {
        let summary = validate(AVERY.as_bytes(), &Section::ALL[..4]).expect("valid");
        let kinds: Vec<Section> = summary.sections.iter().map(|s| s.section).collect();
        assert_eq!(kinds, Section::ALL[..4]);
        assert!(
            summary
                .sections
                .iter()
                .all(|s| s.entries > 0 && !s.empty_reason)
        );
    }

    #[test]
    fn accepts_jordan_with_empty_reasons() {
        let summary = validate(JORDAN.as_bytes(), &Section::ALL[..4]).expect("valid");
        let empty: Vec<Section> = summary
            .sections
            .iter()
            .filter(|s| s.empty_reason)
            .map(|s| s.section)
            .collect();
        assert_eq!(empty, [Section::Allergies, Section::Immunizations]);
        assert!(
            summary
                .sections
                .iter()
                .all(|s| s.empty_reason == (s.entries == 0))
        );
    }

    #[test]
    fn accepts_the_large_bundle_with_all_six_sections() {
        assert!((48 * 1024..=56 * 1024).contains(&LARGE.len()));
        let summary = validate(LARGE.as_bytes(), &Section::ALL).expect("valid");
        assert_eq!(summary.sections.len(), 6);
        assert!(summary.resources > 30);
    }

    #[test]
    fn summary_serializes_section_names() {
        let summary = validate(JORDAN.as_bytes(), &[]).expect("valid");
        let json = serde_json::to_value(&summary).expect("json");
        assert_eq!(json["sections"][0]["section"], "allergies");
        assert_eq!(json["sections"][0]["empty_reason"], true);
    }

    #[test]
    fn rejects_what_is_not_a_json_object() {
        assert!(matches!(
            validate(b"{\"resourceType\": ", &[]),
            Err(BundleError::NotJson { line: 1, .. })
        ));
        assert!(matches!(
            validate(b"[]", &[]),
            Err(BundleError::Missing { .. })
        ));
    }

    #[test]
    fn rejects_a_bundle_that_is_not_a_document() {
        let mut bundle = parse(AVERY);
        bundle["type"] = json!("collection");
        let err = rejects(&bundle, &[]);
        assert!(err.to_string().starts_with("type:"), "{err}");

        let mut bundle = parse(AVERY);
        bundle["resourceType"] = json!("Parameters");
        assert!(
            rejects(&bundle, &[])
                .to_string()
                .starts_with("resourceType:")
        );
    }

    #[test]
    fn rejects_a_bundle_without_identifier_or_timestamp() {
        for member in ["identifier", "timestamp"] {
            let mut bundle = parse(AVERY);
            bundle.as_object_mut().expect("object").remove(member);
            let err = rejects(&bundle, &[]);
            assert!(err.to_string().starts_with(member), "{err}");
        }
    }

    #[test]
    fn rejects_entries_without_full_url_or_resource_type() {
        let mut bundle = parse(AVERY);
        bundle["entry"][2]
            .as_object_mut()
            .expect("entry")
            .remove("fullUrl");
        assert!(
            rejects(&bundle, &[])
                .to_string()
                .starts_with("entry[2].fullUrl")
        );

        let mut bundle = parse(AVERY);
        bundle["entry"][3]["resource"]
            .as_object_mut()
            .expect("resource")
            .remove("resourceType");
        let err = rejects(&bundle, &[]);
        assert!(
            err.to_string()
                .starts_with("entry[3].resource.resourceType"),
            "{err}"
        );
    }

    #[test]
    fn rejects_duplicate_full_urls() {
        let mut bundle = parse(AVERY);
        bundle["entry"][4]["fullUrl"] = bundle["entry"][3]["fullUrl"].clone();
        match rejects(&bundle, &[]) {
            BundleError::DuplicateFullUrl { path, first } => {
                assert_eq!((path.as_str(), first), ("entry[4].fullUrl", 3));
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn rejects_a_document_that_does_not_start_with_a_composition() {
        let mut bundle = parse(AVERY);
        bundle["entry"].as_array_mut().expect("entries").swap(0, 1);
        let err = rejects(&bundle, &[]);
        assert!(
            err.to_string()
                .starts_with("entry[0].resource.resourceType"),
            "{err}"
        );
    }

    #[test]
    fn rejects_a_composition_that_is_not_a_patient_summary() {
        let mut bundle = parse(AVERY);
        // A discharge summary, not an IPS.
        bundle["entry"][0]["resource"]["type"]["coding"][0]["code"] = json!("18842-5");
        let err = rejects(&bundle, &[]);
        assert!(
            err.to_string().starts_with("entry[0].resource.type.coding"),
            "{err}"
        );
    }

    #[test]
    fn rejects_a_subject_that_is_not_a_patient() {
        let mut bundle = parse(AVERY);
        let org = entry_of(&bundle, "Organization");
        bundle["entry"][0]["resource"]["subject"]["reference"] =
            bundle["entry"][org]["fullUrl"].clone();
        match rejects(&bundle, &[]) {
            BundleError::WrongTarget { path, .. } => {
                assert_eq!(path, "entry[0].resource.subject.reference");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn rejects_a_missing_required_section() {
        let bundle = parse(AVERY);
        let err = rejects(&bundle, &[Section::Allergies, Section::Procedures]);
        assert!(matches!(
            err,
            BundleError::MissingSection(Section::Procedures)
        ));

        let mut bundle = parse(AVERY);
        bundle["entry"][0]["resource"]["section"]
            .as_array_mut()
            .expect("sections")
            .remove(0);
        assert!(check(&bundle, &[Section::Medications]).is_ok());
        assert!(matches!(
            rejects(&bundle, &CORE),
            BundleError::MissingSection(Section::Allergies)
        ));
    }

    #[test]
    fn rejects_a_section_with_both_entries_and_an_empty_reason() {
        let mut bundle = parse(AVERY);
        section(&mut bundle, Section::Problems)["emptyReason"] = json!({"text": "SECRET"});
        match rejects(&bundle, &[]) {
            BundleError::SectionContent { both: true, .. } => {}
            other => panic!("{other}"),
        }
    }

    #[test]
    fn rejects_a_section_with_neither_entries_nor_an_empty_reason() {
        let mut bundle = parse(JORDAN);
        let allergies = section(&mut bundle, Section::Allergies);
        allergies
            .as_object_mut()
            .expect("section")
            .remove("emptyReason");
        allergies["entry"] = json!([]);
        match rejects(&bundle, &[]) {
            BundleError::SectionContent { path, both: false } => {
                assert_eq!(path, "entry[0].resource.section[0]");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn rejects_a_section_entry_of_the_wrong_type() {
        let mut bundle = parse(AVERY);
        let condition = entry_of(&bundle, "Condition");
        let url = bundle["entry"][condition]["fullUrl"].clone();
        section(&mut bundle, Section::Allergies)["entry"][0]["reference"] = url;
        match rejects(&bundle, &[]) {
            BundleError::WrongTarget { path, expected } => {
                assert_eq!(path, "entry[0].resource.section[0].entry[0].reference");
                assert_eq!(expected, "AllergyIntolerance");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn rejects_a_duplicate_section() {
        let mut bundle = parse(AVERY);
        let copy = section(&mut bundle, Section::Problems).clone();
        bundle["entry"][0]["resource"]["section"]
            .as_array_mut()
            .expect("sections")
            .push(copy);
        assert!(matches!(
            rejects(&bundle, &[]),
            BundleError::DuplicateSection {
                section: Section::Problems,
                ..
            }
        ));
    }

    #[test]
    fn rejects_an_unresolved_reference_anywhere() {
        let mut bundle = parse(AVERY);
        let statement = entry_of(&bundle, "MedicationStatement");
        bundle["entry"][statement]["resource"]["informationSource"]["reference"] =
            json!("urn:uuid:SECRET-0000");
        match rejects(&bundle, &[]) {
            BundleError::Unresolved { path } => assert_eq!(
                path,
                format!("entry[{statement}].resource.informationSource.reference")
            ),
            other => panic!("{other}"),
        }

        let mut bundle = parse(AVERY);
        let shot = entry_of(&bundle, "Immunization");
        bundle["entry"][shot]["resource"]["performer"][0]["actor"]["reference"] =
            json!("Organization/SECRET");
        match rejects(&bundle, &[]) {
            BundleError::Unresolved { path } => assert_eq!(
                path,
                format!("entry[{shot}].resource.performer[0].actor.reference")
            ),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn resolves_type_and_id_and_contained_references() {
        let mut bundle = parse(AVERY);
        let patient = entry_of(&bundle, "Patient");
        let id = bundle["entry"][patient]["resource"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        bundle["entry"][0]["resource"]["subject"]["reference"] = json!(format!("Patient/{id}"));
        let condition = entry_of(&bundle, "Condition");
        let resource = &mut bundle["entry"][condition]["resource"];
        resource["subject"]["reference"] = json!(format!("Patient/{id}/_history/2"));
        resource["contained"] = json!([{"resourceType": "Practitioner", "id": "p1"}]);
        resource["asserter"] = json!({"reference": "#p1"});
        check(&bundle, &CORE).expect("valid");

        bundle["entry"][condition]["resource"]["asserter"] = json!({"reference": "#p2"});
        assert!(matches!(
            rejects(&bundle, &[]),
            BundleError::Unresolved { .. }
        ));
    }

    #[test]
    fn rejects_an_ambiguous_type_and_id_reference() {
        let mut bundle = parse(AVERY);
        let patient = entry_of(&bundle, "Patient");
        let mut twin = bundle["entry"][patient].clone();
        twin["fullUrl"] = json!("https://other.example/fhir/Patient/x");
        let id = twin["resource"]["id"].as_str().expect("id").to_owned();
        bundle["entry"].as_array_mut().expect("entries").push(twin);
        bundle["entry"][0]["resource"]["subject"]["reference"] = json!(format!("Patient/{id}"));
        assert!(matches!(
            rejects(&bundle, &[]),
            BundleError::Ambiguous { .. }
        ));
    }

    #[test]
    fn rejects_a_section_resource_about_another_patient() {
        let mut bundle = parse(AVERY);
        let patient = entry_of(&bundle, "Patient");
        let mut other = bundle["entry"][patient].clone();
        other["fullUrl"] = json!("urn:uuid:00000000-0000-4000-8000-00000000beef");
        other["resource"]["id"] = json!("someone-else");
        bundle["entry"].as_array_mut().expect("entries").push(other);
        let allergy = entry_of(&bundle, "AllergyIntolerance");
        bundle["entry"][allergy]["resource"]["patient"]["reference"] =
            json!("urn:uuid:00000000-0000-4000-8000-00000000beef");
        match rejects(&bundle, &[]) {
            BundleError::OtherPatient { path } => {
                assert_eq!(path, format!("entry[{allergy}].resource.patient.reference"));
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn paths_never_carry_odd_keys() {
        let mut bundle = parse(AVERY);
        bundle["entry"][1]["resource"]["Testperson SECRET"] = json!({"reference": "nowhere"});
        let err = rejects(&bundle, &[]);
        assert_eq!(
            err.to_string(),
            "entry[1].resource.?.reference: resolves to no entry of the bundle"
        );
    }

    #[test]
    fn section_names_and_codes_round_trip() {
        for section in Section::ALL {
            assert_eq!(section.as_str().parse::<Section>(), Ok(section));
            assert_eq!(Section::from_loinc(section.loinc()), Some(section));
            assert_eq!(
                serde_json::to_value(section).expect("json"),
                json!(section.as_str())
            );
            assert!(!section.title().is_empty() && !section.resource_types().is_empty());
        }
        assert_eq!("Allergies".parse::<Section>(), Err(UnknownSection));
        assert_eq!(Section::Problems.loinc(), "11450-4");
    }
}
