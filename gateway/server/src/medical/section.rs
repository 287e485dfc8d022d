//! The sections of an International Patient Summary a request can ask for,
//! named as in request bodies (`allergies`, ...) and known in a bundle by
//! their LOINC codes. Requests, cases and bundle validation all speak of
//! sections with this one type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IPS Composition section this module knows by its LOINC code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    /// Allergies and Intolerances (required by the IPS).
    Allergies,
    /// Medication Summary (required by the IPS).
    Medications,
    /// Problem List (required by the IPS).
    Problems,
    /// History of Immunizations.
    Immunizations,
    /// History of Procedures.
    Procedures,
    /// Diagnostic Results.
    Results,
}

impl Section {
    /// Every section, in IPS order.
    pub const ALL: [Section; 6] = [
        Section::Allergies,
        Section::Medications,
        Section::Problems,
        Section::Immunizations,
        Section::Procedures,
        Section::Results,
    ];

    /// The section's short name, as in configuration and JSON
    /// (`"allergies"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Allergies => "allergies",
            Section::Medications => "medications",
            Section::Problems => "problems",
            Section::Immunizations => "immunizations",
            Section::Procedures => "procedures",
            Section::Results => "results",
        }
    }

    /// The LOINC code of the section in an IPS Composition.
    pub fn loinc(self) -> &'static str {
        match self {
            Section::Allergies => "48765-2",
            Section::Medications => "10160-0",
            Section::Problems => "11450-4",
            Section::Immunizations => "11369-6",
            Section::Procedures => "47519-4",
            Section::Results => "30954-2",
        }
    }

    /// The resource types the section's entries may refer to.
    pub fn resource_types(self) -> &'static [&'static str] {
        match self {
            Section::Allergies => &["AllergyIntolerance"],
            Section::Medications => &["MedicationStatement", "MedicationRequest"],
            Section::Problems => &["Condition"],
            Section::Immunizations => &["Immunization"],
            Section::Procedures => &["Procedure"],
            Section::Results => &["Observation", "DiagnosticReport"],
        }
    }

    /// The section's title for people, as the IPS names it.
    pub fn title(self) -> &'static str {
        match self {
            Section::Allergies => "Allergies and Intolerances",
            Section::Medications => "Medication Summary",
            Section::Problems => "Problem List",
            Section::Immunizations => "History of Immunizations",
            Section::Procedures => "History of Procedures",
            Section::Results => "Diagnostic Results",
        }
    }

    /// The section with this LOINC code, if it is one of ours.
    pub fn from_loinc(code: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.loinc() == code)
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Section {
    type Err = UnknownSection;

    fn from_str(s: &str) -> Result<Section, UnknownSection> {
        Section::ALL
            .into_iter()
            .find(|section| section.as_str() == s)
            .ok_or(UnknownSection)
    }
}

/// A section name that is none of [`Section::ALL`]'s short names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown IPS section; expected allergies, medications, problems, immunizations, procedures or results"
)]
pub struct UnknownSection;
