//! Policy: which envelope kinds each agency may send to which other agency,
//! and when an emergency request is granted now and reviewed later (break
//! the glass). The pipeline asks [`Policy::evaluate`] after the envelope
//! stage has settled who the parties are and before the ledger append; the
//! decision and [`Policy::hash`] go into the ledger entry.
//!
//! A policy is one TOML file; [`DEFAULT_POLICY`] is `policies/default.toml`,
//! and `policies/README.md` explains each field at length:
//!
//! ```toml
//! version = 1                                   # must be 1
//! [groups]                                      # optional; named as "@federal"
//! federal = ["state", "treasury", "gsa", "hhs"] # agency ids, never groups
//!
//! [[rule]]
//! name = "emergency treatment"                  # required, unique
//! kinds = ["medical.request"]                   # required, known kinds
//! from = ["@federal"]                           # required: ids, "@group", "*"
//! to = ["*"]                                    # required, same syntax
//! effect = "break-glass"                        # "allow" | "deny" | "break-glass"
//! purposes = ["ETREAT"]                         # optional: purpose is one of these
//! attributes = { role = ["medical-officer"] }   # optional: each present, one of these
//! ttl_hours = 24                                # break-glass only: 1..=720, default 24
//! uses = 1                                      # break-glass only: >= 1, default 1
//!
//! [encryption]                                  # optional
//! required_for = ["treasury", "@federal"]       # recipients taking sealed bodies only
//! [rate]                                        # optional: per-agency request limits
//! requests_per_second = 20000                   # each agency's sustained rate (> 0)
//! burst = 40000                                 # requests at once (>= 1)
//! [rate.agencies]                               # optional overrides, by agency id
//! hhs = { requests_per_second = 50, burst = 100 }
//! ```
//!
//! A request matches a rule when kind, sender, recipient, purpose and
//! attributes all match (a rule with `purposes` never matches a request
//! without one). Any matching `deny` rule wins; else the first matching
//! `allow` or `break-glass` rule in file order decides; else deny. `"*"`
//! matches any agency of the registry the policy was loaded against: reload
//! the policy when the registry changes. Loading checks everything and names
//! the file and line of a problem, so evaluation never fails.
//!
//! `[encryption] required_for` names the recipients that accept a
//! `record.send` body and a `medical.request`'s personal fields only
//! sealed end to end ([`crate::sealed`]); the pipeline refuses one in clear
//! to them (`encryption_required`, [`Policy::requires_sealed`]). Without
//! it, both forms are accepted, so existing clients keep working.
//!
//! The `[rate]` table sets how many requests each agency may make
//! (a token bucket per agency); without it, [`Rate::DEFAULT`] applies to every
//! agency. An override that leaves a field out takes the table's value.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::contracts::{Contract, ContractSpec, Contracts};
use crate::kind::Kind;
pub use crate::rate::Rate;
use crate::registry::{AgencyId, Registry};

/// The default federation policy shipped in the binary.
pub const DEFAULT_POLICY: &str = include_str!("../../../policies/default.toml");

/// A parsed, validated policy, bound to the registry it was loaded against.
#[derive(Clone, Debug)]
pub struct Policy {
    hash: [u8; 32],
    agencies: BTreeSet<AgencyId>,
    rules: Vec<Rule>,
    /// Recipients that take record bodies and medical requests sealed only.
    sealed_only: BTreeSet<AgencyId>,
    rates: Rates,
    contracts: Contracts,
}

/// The request rate limits: every agency's, and the exceptions.
#[derive(Clone, Debug, Default)]
struct Rates {
    every: Rate,
    agencies: BTreeMap<AgencyId, Rate>,
}

/// What the pipeline asks the policy about one envelope.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The sending agency (already authenticated).
    pub sender: &'a AgencyId,
    /// The recipient agency.
    pub recipient: &'a AgencyId,
    /// The envelope kind.
    pub kind: Kind,
    /// The purpose of use (HL7 ActReason, e.g. `ETREAT`), if the kind has one.
    pub purpose: Option<&'a str>,
    /// Attributes of the requester, e.g. `role = "medical-officer"`.
    pub attributes: &'a BTreeMap<String, String>,
}

/// The policy's answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by the named rule.
    Allow {
        /// The rule's name.
        rule: String,
    },
    /// Refused; the reason is safe to show to the caller.
    Deny {
        /// Names the deny rule that matched, or says that no rule allows it.
        reason: String,
    },
    /// Emergency access: granted now, reviewed later.
    BreakGlass {
        /// The rule's name.
        rule: String,
        /// What the grant covers.
        grant: BreakGlass,
    },
}

/// The conditions of a break-the-glass grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakGlass {
    /// How long the grant lasts (default 24 hours).
    pub ttl: Duration,
    /// How many responses it covers (default 1).
    pub uses: u32,
}

impl Default for BreakGlass {
    fn default() -> BreakGlass {
        BreakGlass {
            ttl: Duration::from_secs(24 * 3600),
            uses: 1,
        }
    }
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The policy file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The text is not a valid policy.
    #[error("{source_name}{}: {message}", line.map_or_else(String::new, |l| format!(":{l}")))]
    Invalid {
        /// The file (or other source) the text came from.
        source_name: String,
        /// The 1-based line of the offending rule or key, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

impl Policy {
    /// Reads and validates a policy file against `registry`.
    ///
    /// # Errors
    /// [`PolicyError::Read`] if the file cannot be read, else as [`Policy::parse`].
    pub fn load(path: &Path, registry: &Registry) -> Result<Policy, PolicyError> {
        let read = |source| PolicyError::Read {
            path: path.to_owned(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(read)?;
        Policy::parse(&text, &path.display().to_string(), registry)
    }

    /// Parses and validates policy TOML; `source_name` names it in errors.
    ///
    /// # Errors
    /// [`PolicyError::Invalid`] for the first problem found: TOML syntax,
    /// unknown keys, a version other than 1, a duplicate rule name, an empty
    /// list, an unknown kind, agency or group, or a bad break-glass setting.
    pub fn parse(
        text: &str,
        source_name: &str,
        registry: &Registry,
    ) -> Result<Policy, PolicyError> {
        let agencies = registry.agencies().map(|a| a.id.clone()).collect();
        let groups = BTreeMap::new();
        let mut at = Resolver {
            text,
            source_name,
            agencies,
            groups,
        };
        let file: PolicyFile = toml::from_str(text).map_err(|e| at.err(e.span(), e.message()))?;
        if *file.version.get_ref() != 1 {
            let found = file.version.get_ref();
            let message = format!("version must be 1, not {found}");
            return Err(at.err(file.version.span(), message));
        }
        for (name, members) in &file.groups {
            at.group(name, members)?;
        }
        let mut names = BTreeSet::new();
        let mut rules = Vec::with_capacity(file.rule.len());
        for entry in &file.rule {
            let name = &entry.name;
            if !names.insert(name.get_ref()) {
                let message = format!("duplicate rule name {:?}", name.get_ref());
                return Err(at.err(name.span(), message));
            }
            rules.push(at.rule(entry)?);
        }
        let sealed_only = match &file.encryption {
            // "*" is every agency of the registry, as in a rule.
            Some(e) => (at.parties(&e.required_for, "required_for")?)
                .unwrap_or_else(|| at.agencies.clone()),
            None => BTreeSet::new(),
        };
        let rates = match &file.rate {
            Some(rate) => at.rates(rate)?,
            None => Rates::default(),
        };
        let mut contracts = Vec::with_capacity(file.contract.len());
        for entry in &file.contract {
            let spec = entry.get_ref();
            let contract = Contract::load(spec, registry)
                .map_err(|e| at.err(entry.span(), format!("contract {:?}: {e}", spec.name)))?;
            contracts.push(contract);
        }
        let contracts =
            Contracts::new(contracts).map_err(|e| at.err(None::<Range<usize>>, e.to_string()))?;
        let hash = Sha256::digest(text.as_bytes()).into();
        let agencies = at.agencies;
        Ok(Policy {
            hash,
            agencies,
            rules,
            sealed_only,
            rates,
            contracts,
        })
    }

    /// Whether `recipient` accepts record bodies and medical requests only
    /// sealed end to end (`[encryption] required_for`).
    pub fn requires_sealed(&self, recipient: &AgencyId) -> bool {
        self.sealed_only.contains(recipient)
    }

    /// The contracts in force ([`crate::contracts`]), checked when the
    /// policy was loaded.
    pub fn contracts(&self) -> &Contracts {
        &self.contracts
    }

    /// The request rate limit of `agency`.
    pub fn rate(&self, agency: &AgencyId) -> Rate {
        self.rates
            .agencies
            .get(agency)
            .copied()
            .unwrap_or(self.rates.every)
    }

    /// Decides one request. Pure; allocates only the decision's text.
    pub fn evaluate(&self, req: &Request<'_>) -> Decision {
        let (kind, from, to) = (req.kind, req.sender, req.recipient);
        // Parties outside the registry match no rule, not even "*": the
        // policy was checked against that registry and no other.
        if self.agencies.contains(from) && self.agencies.contains(to) {
            let mut first = None;
            for rule in self.rules.iter().filter(|r| r.matches(req)) {
                if rule.effect == Effect::Deny {
                    let reason = format!("rule {:?} denies {kind} from {from} to {to}", rule.name);
                    return Decision::Deny { reason };
                }
                // Keep scanning: a later deny rule still wins over this one.
                first = first.or(Some(rule));
            }
            if let Some(rule) = first {
                let (name, grant) = (rule.name.clone(), rule.grant);
                return match rule.effect {
                    Effect::BreakGlass => Decision::BreakGlass { rule: name, grant },
                    Effect::Allow | Effect::Deny => Decision::Allow { rule: name },
                };
            }
        }
        let reason = format!("no rule allows {kind} from {from} to {to}");
        Decision::Deny { reason }
    }

    /// SHA-256 of the exact policy text. It names the policy in force in
    /// every ledger entry, so any edit (even to a comment) is a new policy.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// [`Policy::hash`] as lowercase hex.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }
}

const MAX_TTL_HOURS: u64 = 720;
/// The highest `requests_per_second` a policy may set.
const MAX_RATE: f64 = 1e9;

// Kinds are a bit set indexed by declaration order, so matching is one AND.
const _: () = assert!(Kind::ALL.len() <= 64);

fn kind_bit(kind: Kind) -> u64 {
    1 << (kind as u32)
}

/// One rule, resolved: groups expanded, `None` parties meaning "*".
#[derive(Clone, Debug)]
struct Rule {
    name: String,
    kinds: u64,
    from: Option<BTreeSet<AgencyId>>,
    to: Option<BTreeSet<AgencyId>>,
    effect: Effect,
    grant: BreakGlass, // what a break-glass rule grants; unused otherwise
    purposes: Option<BTreeSet<String>>,
    attributes: Vec<(String, BTreeSet<String>)>,
}

impl Rule {
    fn matches(&self, req: &Request<'_>) -> bool {
        let purpose = |p: &BTreeSet<String>| req.purpose.is_some_and(|x| p.contains(x));
        let attribute = |(name, allowed): &(String, BTreeSet<String>)| {
            req.attributes
                .get(name)
                .is_some_and(|v| allowed.contains(v.as_str()))
        };
        self.kinds & kind_bit(req.kind) != 0
            && self.from.as_ref().is_none_or(|s| s.contains(req.sender))
            && self.to.as_ref().is_none_or(|s| s.contains(req.recipient))
            && self.purposes.as_ref().is_none_or(purpose)
            && self.attributes.iter().all(attribute)
    }
}

// The file as written; the spans locate problems found after TOML parsing.
type Names = Spanned<Vec<Spanned<String>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: Spanned<i64>,
    #[serde(default)]
    groups: BTreeMap<String, Names>,
    #[serde(default)]
    rule: Vec<RuleEntry>,
    encryption: Option<EncryptionEntry>,
    rate: Option<RateEntry>,
    #[serde(default)]
    contract: Vec<Spanned<ContractSpec>>,
}

/// `[encryption]`: who takes sealed bodies only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptionEntry {
    required_for: Names,
}

/// The `[rate]` table: every agency's rate, and overrides by agency id.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateEntry {
    requests_per_second: Option<Spanned<f64>>,
    burst: Option<Spanned<i64>>,
    #[serde(default)]
    agencies: BTreeMap<String, Spanned<RateValues>>,
}

/// One agency's rate, as written: each field optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateValues {
    requests_per_second: Option<Spanned<f64>>,
    burst: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    name: Spanned<String>,
    kinds: Names,
    from: Names,
    to: Names,
    effect: Effect,
    purposes: Option<Names>,
    attributes: Option<BTreeMap<String, Names>>,
    ttl_hours: Option<Spanned<i64>>,
    uses: Option<Spanned<i64>>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Effect {
    Allow,
    Deny,
    BreakGlass,
}

/// Turns the names in the file into registry ids and expanded groups, and
/// problems into errors that name the file and line.
struct Resolver<'a> {
    text: &'a str,
    source_name: &'a str,
    agencies: BTreeSet<AgencyId>,
    groups: BTreeMap<&'a str, BTreeSet<AgencyId>>,
}

impl<'a> Resolver<'a> {
    fn err(&self, span: impl Into<Option<Range<usize>>>, m: impl Into<String>) -> PolicyError {
        let line_of = |at: usize| self.text.bytes().take(at).filter(|&b| b == b'\n').count() + 1;
        let line = span.into().map(|s| line_of(s.start));
        let (source_name, message) = (self.source_name.to_owned(), m.into());
        PolicyError::Invalid {
            source_name,
            line,
            message,
        }
    }

    fn group(&mut self, name: &'a str, members: &Names) -> Result<(), PolicyError> {
        let mut set = BTreeSet::new();
        for member in members.get_ref() {
            if member.get_ref().starts_with('@') {
                let message = format!("group {name:?} names a group: groups may not nest");
                return Err(self.err(member.span(), message));
            }
            set.insert(self.agency(member)?);
        }
        self.groups.insert(name, set);
        Ok(())
    }

    fn rule(&self, r: &RuleEntry) -> Result<Rule, PolicyError> {
        let mut kinds = 0;
        for kind in self.listed(&r.kinds, "kinds")? {
            let parsed = kind
                .get_ref()
                .parse::<Kind>()
                .map_err(|m| self.err(kind.span(), m.to_string()));
            kinds |= kind_bit(parsed?);
        }
        let strings = |list: &Names, what| -> Result<BTreeSet<String>, PolicyError> {
            let items = self.listed(list, what)?.iter();
            Ok(items.map(|s| s.get_ref().clone()).collect())
        };
        let purposes = r.purposes.as_ref().map(|p| strings(p, "purposes"));
        let purposes = purposes.transpose()?;
        let mut attributes = Vec::new();
        for (attr, values) in r.attributes.iter().flatten() {
            attributes.push((attr.clone(), strings(values, attr)?));
        }
        let ttl_or_uses = r.ttl_hours.as_ref().or(r.uses.as_ref());
        if r.effect != Effect::BreakGlass
            && let Some(key) = ttl_or_uses
        {
            let message = "ttl_hours and uses apply to break-glass rules only";
            return Err(self.err(key.span(), message));
        }
        let (from, to) = (self.parties(&r.from, "from")?, self.parties(&r.to, "to")?);
        let (name, effect, grant) = (r.name.get_ref().clone(), r.effect, self.grant(r)?);
        Ok(Rule {
            name,
            kinds,
            from,
            to,
            effect,
            grant,
            purposes,
            attributes,
        })
    }

    fn grant(&self, r: &RuleEntry) -> Result<BreakGlass, PolicyError> {
        let mut grant = BreakGlass::default();
        if let Some(t) = &r.ttl_hours {
            let hours = u64::try_from(*t.get_ref()).ok();
            let hours = hours.filter(|h| (1..=MAX_TTL_HOURS).contains(h));
            let message = format!("ttl_hours must be 1..={MAX_TTL_HOURS}, not {}", t.get_ref());
            let hours = hours.ok_or_else(|| self.err(t.span(), message))?;
            grant.ttl = Duration::from_secs(hours * 3600);
        }
        if let Some(u) = &r.uses {
            let uses = u32::try_from(*u.get_ref()).ok().filter(|&n| n >= 1);
            let message = format!("uses must be 1..={}, not {}", u32::MAX, u.get_ref());
            grant.uses = uses.ok_or_else(|| self.err(u.span(), message))?;
        }
        Ok(grant)
    }

    /// The agencies named, or `None` for "*". Every entry is checked, even
    /// after a "*", so a typo never hides behind it.
    fn parties(&self, list: &Names, what: &str) -> Result<Option<BTreeSet<AgencyId>>, PolicyError> {
        let (mut any, mut set) = (false, BTreeSet::new());
        for item in self.listed(list, what)? {
            let text = item.get_ref().as_str();
            if text == "*" {
                any = true;
            } else if let Some(group) = text.strip_prefix('@') {
                let unknown = || self.err(item.span(), format!("unknown group {text:?}"));
                set.extend(self.groups.get(group).ok_or_else(unknown)?.iter().cloned());
            } else {
                set.insert(self.agency(item)?);
            }
        }
        Ok((!any).then_some(set))
    }

    fn agency(&self, item: &Spanned<String>) -> Result<AgencyId, PolicyError> {
        let id: Result<AgencyId, _> = item.get_ref().parse();
        // The operator's own file: naming the value helps, and is safe.
        let id = id.map_err(|_| {
            let message = format!(
                "invalid agency id {:?}: use 1-63 lowercase letters, digits and inner hyphens",
                item.get_ref()
            );
            self.err(item.span(), message)
        })?;
        if !self.agencies.contains(&id) {
            let message = format!("unknown agency {:?} (not in the registry)", id.as_str());
            return Err(self.err(item.span(), message));
        }
        Ok(id)
    }

    fn rates(&self, r: &RateEntry) -> Result<Rates, PolicyError> {
        let every = self.rate(
            r.requests_per_second.as_ref(),
            r.burst.as_ref(),
            Rate::DEFAULT,
        )?;
        let mut agencies = BTreeMap::new();
        for (name, values) in &r.agencies {
            let item = Spanned::new(values.span(), name.clone());
            let v = values.get_ref();
            let rate = self.rate(v.requests_per_second.as_ref(), v.burst.as_ref(), every)?;
            agencies.insert(self.agency(&item)?, rate);
        }
        Ok(Rates { every, agencies })
    }

    /// A rate with these fields set over `base`, checked.
    fn rate(
        &self,
        per_second: Option<&Spanned<f64>>,
        burst: Option<&Spanned<i64>>,
        base: Rate,
    ) -> Result<Rate, PolicyError> {
        let mut rate = base;
        if let Some(r) = per_second {
            let per_second = *r.get_ref();
            if !(per_second > 0.0 && per_second <= MAX_RATE) {
                let message = format!("requests_per_second must be over 0 and at most {MAX_RATE}");
                return Err(self.err(r.span(), message));
            }
            rate.per_second = per_second;
        }
        if let Some(b) = burst {
            let burst = u32::try_from(*b.get_ref()).ok().filter(|&n| n >= 1);
            let message = format!("burst must be 1..={}, not {}", u32::MAX, b.get_ref());
            rate.burst = burst.ok_or_else(|| self.err(b.span(), message))?;
        }
        Ok(rate)
    }

    fn listed<'l>(&self, l: &'l Names, what: &str) -> Result<&'l [Spanned<String>], PolicyError> {
        match l.get_ref().as_slice() {
            [] => Err(self.err(l.span(), format!("{what} must not be empty"))),
            items => Ok(items),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(ids: &[&str]) -> Registry {
        crate::registry::for_tests(ids)
    }

    const FEDERATION: [&str; 5] = ["state", "treasury", "gsa", "hhs", "usaid"];

    const TEST: &str = r#"version = 1
rule = [
  { name = "one", kinds = ["record.send"], from = ["state"], to = ["*"], effect = "allow" },
  { name = "two", kinds = ["record.send", "inventory.report"], from = ["*"], to = ["*"], effect = "allow" },
  { name = "no hhs", kinds = ["record.send"], from = ["@fed"], to = ["hhs"], effect = "deny" },
  { name = "bg", kinds = ["medical.request"], from = ["*"], to = ["*"], effect = "break-glass",
    purposes = ["ETREAT"], attributes = { role = ["medic"] }, ttl_hours = 2, uses = 3 },
  { name = "bg-default", kinds = ["medical.request"], from = ["*"], to = ["*"], effect = "break-glass",
    purposes = ["ETREAT"] },
]
[groups]
fed = ["state", "gsa"]
"#;

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text, "pol.toml", &registry(&FEDERATION))
    }

    /// The decision for one request; `role` becomes the "role" attribute.
    fn ask(p: &Policy, route: &str, kind: Kind, purpose: Option<&str>, role: &str) -> Decision {
        let (from, to) = route.split_once(' ').expect("route");
        let (sender, recipient) = (&from.parse().expect("id"), &to.parse().expect("id"));
        let role = [("role".to_owned(), role.to_owned())].into_iter();
        let attributes = &role.filter(|(_, r)| !r.is_empty()).collect();
        p.evaluate(&Request {
            sender,
            recipient,
            kind,
            purpose,
            attributes,
        })
    }

    /// Checks TEST against cases of the form `from to | kind | purpose |
    /// role | how the decision starts`, "-" meaning no purpose or no role.
    /// A decision reads "allow RULE", "deny: REASON" or "break-glass RULE TTL USES".
    fn check(cases: &[&str]) {
        check_policy(TEST, cases);
    }

    fn check_policy(policy: &str, cases: &[&str]) {
        let p = parse(policy).expect("policy");
        for case in cases {
            let cols: Vec<&str> = case.split('|').map(str::trim).collect();
            let [route, kind, purpose, role, want] = cols[..] else {
                panic!("{case}")
            };
            let kind = kind.parse().expect(case);
            let (purpose, role) = (Some(purpose).filter(|p| *p != "-"), role.trim_matches('-'));
            let got = match ask(&p, route, kind, purpose, role) {
                Decision::Allow { rule } => format!("allow {rule}"),
                Decision::Deny { reason } => format!("deny: {reason}"),
                Decision::BreakGlass { rule, grant } => {
                    format!("break-glass {rule} {:?} {}", grant.ttl, grant.uses)
                }
            };
            assert!(got.starts_with(want), "{case}\n=> {got}");
        }
    }

    #[test]
    fn denies_by_default() {
        check(&[
            "gsa state  | medical.response | - | - | deny: no rule allows medical.response from gsa to state",
            "state gsa  | asset.register   | - | - | deny: no rule allows asset.register from state to gsa",
            "state nasa | record.send      | - | - | deny: no rule",
            "nasa state | record.send      | - | - | deny: no rule",
        ]);
        let none = parse("version = 1").expect("empty");
        let decision = ask(&none, "state gsa", Kind::RecordSend, None, "");
        assert!(matches!(decision, Decision::Deny { .. }), "{decision:?}");
    }

    #[test]
    fn first_matching_rule_in_file_order_decides() {
        check(&[
            "state gsa | record.send      | - | - | allow one",
            "gsa state | record.send      | - | - | allow two",
            "state gsa | inventory.report | - | - | allow two",
        ]);
    }

    #[test]
    fn deny_rule_wins_over_allow() {
        check(&[
            r#"state hhs    | record.send      | - | - | deny: rule "no hhs" denies record.send from state to hhs"#,
            r#"gsa hhs      | record.send      | - | - | deny: rule "no hhs""#,
            r#"treasury hhs | record.send      | - | - | allow two"#,
            r#"state hhs    | inventory.report | - | - | allow two"#,
        ]);
    }

    #[test]
    fn break_glass_needs_purpose_and_role() {
        let cases = [
            "state hhs | medical.request | ETREAT | medical-officer  | break-glass emergency treatment 86400s 1",
            "state hhs | medical.request | -      | medical-officer  | deny: no rule allows medical.request",
            "state hhs | medical.request | TREAT  | medical-officer  | deny: no rule",
            "state hhs | medical.request | ETREAT | -                | deny: no rule",
            "state hhs | medical.request | ETREAT | consular-officer | deny: no rule",
        ];
        check_policy(DEFAULT_POLICY, &cases);
        // The grant follows the rule; ttl_hours and uses default to 24 and 1.
        check(&[
            "gsa hhs   | medical.request | ETREAT | medic            | break-glass bg 7200s 3",
            "gsa hhs   | medical.request | ETREAT | -                | break-glass bg-default 86400s 1",
        ]);
    }

    #[test]
    fn default_policy_loads_against_any_registry() {
        for ids in [&[][..], &["solo"], &["a1", "b-2", "c3"]] {
            let p = Policy::parse(DEFAULT_POLICY, "default.toml", &registry(ids)).expect("default");
            for (from, to) in ids.iter().zip(ids.iter().rev()) {
                for kind in Kind::ALL {
                    let d = ask(&p, &format!("{from} {to}"), kind, None, "medical-officer");
                    let allowed = matches!(d, Decision::Allow { .. });
                    assert_eq!(allowed, kind != Kind::MedicalRequest, "{kind}: {d:?}");
                }
            }
        }
    }

    /// Version 1 and one rule table, with `line` replacing the key it sets.
    fn with(line: &str) -> String {
        let rule = "[[rule]]\nname = 'r'\nkinds = ['record.send']\nfrom = ['*']\nto = ['*']\neffect = 'allow'";
        let key = format!("{} =", line.split(" =").next().unwrap_or(line));
        let kept: Vec<&str> = rule.lines().filter(|l| !l.starts_with(&key)).collect();
        format!("version = 1\n{}\n{line}", kept.join("\n"))
    }

    #[test]
    fn errors_name_file_and_line() {
        // Each case marks the offending line with "# " and the expected message.
        let duplicate = with("effect = 'deny'") + &with("name = 'r' # duplicate rule name")[11..];
        let cases = [
            "version = 1\nrule = [ # unclosed array".to_owned(),
            "version = 2 # version must be 1, not 2".into(),
            "version = 1\nextra = true # unknown field `extra`".into(),
            with("priority = 3 # unknown field `priority`"),
            with("effect = 'permit' # unknown variant `permit`"),
            duplicate,
            with("kinds = [] # kinds must not be empty"),
            with("from = [] # from must not be empty"),
            with("kinds = ['record.sned'] # unknown kind \"record.sned\""),
            with("to = ['nasa'] # unknown agency \"nasa\" (not in the registry)"),
            with("from = ['state', 'State'] # invalid agency id \"State\""),
            with("to = ['*', '@west'] # unknown group \"@west\""),
            with("purposes = [] # purposes must not be empty"),
            with("attributes = { role = [] } # role must not be empty"),
            with("ttl_hours = 4 # ttl_hours and uses apply to break-glass rules only"),
            with("effect = 'break-glass'\nttl_hours = 721 # ttl_hours must be 1..=720, not 721"),
            with("effect = 'break-glass'\nuses = 0 # uses must be 1..=4294967295, not 0"),
            "version = 1\n[groups]\na = ['state']\nb = ['@a'] # groups may not nest".into(),
            "version = 1\n[groups]\na = ['state', 'mars'] # unknown agency \"mars\"".into(),
            "version = 1\n[rate]\nrequests_per_second = 0 # requests_per_second must be over 0"
                .into(),
            "version = 1\n[rate]\nrequests_per_second = -2.5 # must be over 0".into(),
            "version = 1\n[rate]\nburst = 0 # burst must be 1..=4294967295, not 0".into(),
            "version = 1\n[rate]\nper_minute = 5 # unknown field `per_minute`".into(),
            "version = 1\n[rate.agencies]\nnasa = { burst = 5 } # unknown agency \"nasa\"".into(),
            "version = 1\n[rate.agencies]\nhhs = { rps = 5 } # unknown field `rps`".into(),
        ];
        for text in cases {
            let mut lines = text.lines().enumerate();
            let marked = lines.find_map(|(i, l)| Some((i + 1, l.split_once(" # ")?.1)));
            let (line, message) = marked.expect("a marked line");
            let shown = parse(&text).expect_err(&text).to_string();
            let ok = shown.starts_with(&format!("pol.toml:{line}: ")) && shown.contains(message);
            assert!(ok && !shown.contains('\n'), "{text}\n=> {shown}");
        }
    }

    #[test]
    fn encryption_is_required_only_for_the_recipients_named() {
        let none = parse(TEST).expect("policy");
        assert!(
            FEDERATION
                .iter()
                .all(|a| !none.requires_sealed(&a.parse().expect("id")))
        );
        let some = parse(&format!(
            "{TEST}[encryption]\nrequired_for = [\"treasury\", \"@fed\"]\n"
        ))
        .expect("policy");
        let sealed: Vec<&str> = FEDERATION
            .into_iter()
            .filter(|a| some.requires_sealed(&a.parse().expect("id")))
            .collect();
        assert_eq!(sealed, ["state", "treasury", "gsa"]);
        let all = parse("version = 1\n[encryption]\nrequired_for = [\"*\"]").expect("policy");
        assert!(
            FEDERATION
                .iter()
                .all(|a| all.requires_sealed(&a.parse().expect("id")))
        );
        for (text, message) in [
            (
                "version = 1\n[encryption]\nrequired_for = []",
                "required_for must not be empty",
            ),
            (
                "version = 1\n[encryption]\nrequired_for = ['mars']",
                "unknown agency \"mars\"",
            ),
            (
                "version = 1\n[encryption]\nrequired = ['state']",
                "unknown field `required`",
            ),
        ] {
            let shown = parse(text).expect_err(text).to_string();
            assert!(
                shown.starts_with("pol.toml:3: ") && shown.contains(message),
                "{shown}"
            );
        }
    }

    #[test]
    fn rates_default_and_override_per_agency() {
        let id = |a: &str| a.parse::<AgencyId>().expect("id");
        let none = parse("version = 1").expect("no rate table");
        assert_eq!(none.rate(&id("state")), Rate::DEFAULT);
        let text = "version = 1\n[rate]\nrequests_per_second = 100\nburst = 200\n\
                    [rate.agencies]\nhhs = { requests_per_second = 0.5 }\n\
                    gsa = { burst = 7, requests_per_second = 3 }\n";
        let p = parse(text).expect("rates");
        let rate = |a: &str| {
            let r = p.rate(&id(a));
            (r.per_second, r.burst)
        };
        assert_eq!(rate("state"), (100.0, 200));
        assert_eq!(rate("hhs"), (0.5, 200), "the burst is the table's");
        assert_eq!(rate("gsa"), (3.0, 7));
        let partial = parse("version = 1\n[rate]\nburst = 5\n").expect("burst only");
        assert_eq!(
            partial.rate(&id("state")).per_second,
            Rate::DEFAULT.per_second
        );
    }

    #[test]
    fn hash_is_sha256_of_the_file_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, DEFAULT_POLICY).expect("write");
        let p = Policy::load(&path, &registry(&FEDERATION)).expect("load");
        let digest: [u8; 32] = Sha256::digest(DEFAULT_POLICY.as_bytes()).into();
        assert_eq!((p.hash(), p.hash_hex()), (digest, hex::encode(digest)));
        // A comment is part of the policy in force.
        let edited = parse(&format!("{DEFAULT_POLICY}# reviewed\n")).expect("edited");
        assert_ne!(edited.hash(), digest);
        let missing = Policy::load(&dir.path().join("absent.toml"), &registry(&[]));
        assert!(matches!(missing, Err(PolicyError::Read { .. })));
    }
}
