//! Contracts (issue 25): declarative rules kept in the policy file that
//! react to what the log records and act through a fixed set of acts, so
//! agencies automate their manual steps and an auditor can replay every
//! automatic decision (docs/contracts.md).
//!
//! ```toml
//! [[contract]]
//! name = "treasury-offices-auto-accept"        # required, unique: a-z 0-9 -
//! on = "envelope:asset.transfer.offer"         # trigger::Trigger
//! when = 'offer.from == "treasury" && offer.to == "treasury-field"'  # CEL, a bool
//! do = "accept_offer"                          # action::Action
//! # to = "gao"                 notify
//! # deadline = "count-due"     set_deadline, with after_hours = 72
//! ```
//!
//! Loading checks everything a contract could fail on at run time that can
//! be known before: the trigger, the action and its parameters, and the
//! condition (its syntax, every name and field it reads, the types of
//! every operation, that it is a bool, and its cost: [`check`]). A file
//! with a contract that fails any of these is refused whole, so the set in
//! force stays the one before.
//!
//! - [`schema`]: the types, and the records a trigger binds;
//! - [`trigger`]: what a contract reacts to;
//! - [`action`]: what it may do;
//! - [`check`]: the type check and the cost bound of a condition;
//! - [`act`]: the log entry of an act (its canonical encoding).

pub mod act;
pub mod action;
pub mod check;
pub mod schema;
pub mod trigger;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::registry::Registry;
use action::{Action, Params};
use check::Checked;
pub use schema::is_name;
use trigger::Trigger;

/// The longest condition, in bytes.
pub const MAX_CONDITION: usize = 4096;
/// The deepest nesting (parentheses, calls, lists) a condition may have.
pub const MAX_DEPTH: u16 = 32;
/// The most operator characters a condition may have outside its string
/// literals: a chain `a + b + ...` nests as deep as it is long, which the
/// parser's nesting bound does not see, so it is bounded here, before the
/// parser (and the checker, and the evaluator) recurse over it.
pub const MAX_OPERATORS: usize = 256;
/// The most contracts a policy may hold.
pub const MAX_CONTRACTS: usize = 1000;
/// The most the contracts on one trigger may cost together: the bound on
/// what evaluating them costs per entry.
pub const MAX_TRIGGER_COST: u64 = 2_000_000;

/// One `[[contract]]` table, as the file gives it. Its canonical JSON
/// (these fields in this order, absent ones left out) is what its hash
/// covers.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ContractSpec {
    /// Its name.
    pub name: String,
    /// Its trigger.
    pub on: String,
    /// Its condition, CEL.
    pub when: String,
    /// Its action.
    #[serde(rename = "do")]
    pub act: String,
    /// `notify`'s recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `set_deadline`'s name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// `set_deadline`'s delay, hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_hours: Option<u32>,
}

#[cfg(test)]
impl ContractSpec {
    /// A contract `name` on `on`, when `when`, doing `act` (which takes no
    /// parameter), for unit tests.
    pub(crate) fn for_tests(name: &str, on: &str, when: &str, act: &str) -> ContractSpec {
        ContractSpec {
            name: name.into(),
            on: on.into(),
            when: when.into(),
            act: act.into(),
            to: None,
            deadline: None,
            after_hours: None,
        }
    }
}

/// Why a contract is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// A name outside the alphabet.
    #[error("name {0:?} is not a name (1 to 64 of a-z, 0-9 and -)")]
    Name(String),
    /// The trigger.
    #[error(transparent)]
    Trigger(#[from] trigger::UnknownTrigger),
    /// The action.
    #[error(transparent)]
    Action(#[from] action::ActionError),
    /// The condition does not parse.
    #[error("the condition does not parse: {0}")]
    Syntax(String),
    /// The condition does not check.
    #[error("the condition: {0}")]
    Check(#[from] check::CheckError),
    /// The condition is too long.
    #[error("the condition is {0} bytes, over {MAX_CONDITION}")]
    TooLong(usize),
    /// The condition chains too many operators.
    #[error("the condition has {0} operators, over {MAX_OPERATORS}")]
    TooManyOperators(usize),
}

/// One contract, checked and compiled.
#[derive(Clone)]
pub struct Contract {
    /// As the file gives it.
    pub spec: ContractSpec,
    /// Its trigger.
    pub trigger: Trigger,
    /// Its action.
    pub action: Action,
    /// What the check found of its condition (its cost).
    pub checked: Checked,
    /// SHA-256 of its canonical JSON.
    pub hash: [u8; 32],
    /// The condition as checked: what runs is what was checked.
    expr: Arc<cel::IdedExpr>,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("name", &self.spec.name)
            .field("trigger", &self.trigger)
            .field("action", &self.action)
            .field("cost", &self.checked.cost)
            .finish_non_exhaustive()
    }
}

/// Why a condition could not be evaluated on an entry (the contract is
/// recorded as failed there, with [`EvalError::code`]; the commit goes on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// An integer division or remainder by zero.
    #[error("division by zero")]
    DivisionByZero,
    /// An integer overflowed.
    #[error("integer overflow")]
    Overflow,
    /// A list index out of range.
    #[error("index out of range")]
    Index,
    /// An optional field read without `has()`.
    #[error("a field the record lacks was read")]
    Missing,
    /// A binding the language cannot take (a float, a null), or a result
    /// other than a bool: a fault of the gateway, not of the condition.
    #[error("a value outside the language")]
    Value,
    /// Anything else the evaluator refused.
    #[error("the evaluation failed")]
    Other,
}

impl EvalError {
    /// A stable code for it, as a failed act's log entry names it.
    pub fn code(self) -> &'static str {
        match self {
            EvalError::DivisionByZero => "division_by_zero",
            EvalError::Overflow => "overflow",
            EvalError::Index => "index_out_of_range",
            EvalError::Missing => "missing_field",
            EvalError::Value => "bad_value",
            EvalError::Other => "evaluation_failed",
        }
    }
}

impl From<cel::ExecutionError> for EvalError {
    fn from(e: cel::ExecutionError) -> EvalError {
        use cel::ExecutionError as E;
        match e {
            E::DivisionByZero(_) | E::RemainderByZero(_) => EvalError::DivisionByZero,
            E::Overflow(..) => EvalError::Overflow,
            E::IndexOutOfBounds(_) => EvalError::Index,
            E::NoSuchKey(_) => EvalError::Missing,
            _ => EvalError::Other,
        }
    }
}

/// The evaluator's environment: the standard one, shared (building it for
/// each evaluation would cost more than most conditions).
fn env() -> Arc<cel::Env> {
    static ENV: std::sync::OnceLock<Arc<cel::Env>> = std::sync::OnceLock::new();
    Arc::clone(ENV.get_or_init(|| Arc::new(cel::Env::stdlib())))
}

/// How many operator characters `text` has outside its string literals.
fn operators(text: &str) -> usize {
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    let mut n = 0;
    for b in text.bytes() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'=' | b'!' | b'&' | b'|'
                | b'.' | b'[' | b'?' | b',' => n += 1,
                _ => {}
            },
        }
    }
    n
}

impl Contract {
    /// Checks and compiles `spec` against `registry`.
    ///
    /// # Errors
    /// [`ContractError`] naming what is wrong.
    pub fn load(spec: &ContractSpec, registry: &Registry) -> Result<Contract, ContractError> {
        if !is_name(&spec.name) {
            return Err(ContractError::Name(spec.name.chars().take(64).collect()));
        }
        let trigger: Trigger = spec.on.parse()?;
        let params = Params {
            to: spec.to.as_deref(),
            deadline: spec.deadline.as_deref(),
            after_hours: spec.after_hours,
        };
        let action = Action::parse(&spec.act, &params, &trigger, registry)?;
        if spec.when.len() > MAX_CONDITION {
            return Err(ContractError::TooLong(spec.when.len()));
        }
        let chained = operators(&spec.when);
        if chained > MAX_OPERATORS {
            return Err(ContractError::TooManyOperators(chained));
        }
        // Parsed first with a bounded depth, so a deeply nested condition is
        // refused by the parser's limit rather than by the stack.
        let expr = cel::parser::Parser::new()
            .max_recursion_depth(MAX_DEPTH)
            .parse(&spec.when)
            .map_err(|e| ContractError::Syntax(one_line(&e.to_string())))?;
        let checked = check::check(&expr, &trigger.scope())?;
        Ok(Contract {
            spec: spec.clone(),
            trigger,
            action,
            checked,
            hash: spec_hash(spec),
            expr: Arc::new(expr),
        })
    }

    /// [`Contract::hash`] as lowercase hex.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }

    /// The contract as `GET /v1/contracts` and `xgate contracts list` show
    /// it: `{"name","on","when","do",("to","deadline","after_hours"),
    /// "hash","cost"}`.
    pub fn describe(&self) -> Value {
        let mut line = match serde_json::to_value(&self.spec) {
            Ok(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        line.insert("hash".into(), Value::from(self.hash_hex()));
        line.insert("cost".into(), Value::from(self.checked.cost));
        Value::Object(line)
    }

    /// Whether the condition holds with `bindings` (each name the trigger
    /// binds, as JSON).
    ///
    /// # Errors
    /// [`EvalError`]: a binding that is not a value the language takes, or
    /// an evaluation that fails (a division by zero, an index out of range,
    /// an optional field read without `has`).
    pub fn holds(&self, bindings: &BTreeMap<&str, Value>) -> Result<bool, EvalError> {
        self.holds_in(&Bound::new(bindings))
    }

    /// [`Contract::holds`] with the bindings made already ([`Bound`]), as
    /// every contract on one event is evaluated.
    ///
    /// # Errors
    /// As [`Contract::holds`].
    pub fn holds_in(&self, bound: &Bound) -> Result<bool, EvalError> {
        let context = bound.0.as_ref().map_err(|e| *e)?;
        match cel::Value::resolve(&self.expr, context)? {
            cel::Value::Bool(b) => Ok(b),
            _ => Err(EvalError::Value),
        }
    }
}

/// An event's bindings as the language's values, in an evaluation context:
/// made once for all the contracts on its trigger (for a simple condition,
/// making them costs more than evaluating it), or why they cannot be.
pub struct Bound(Result<cel::Context<'static, 'static>, EvalError>);

impl Bound {
    /// The bindings `bindings` (each name a trigger binds, as JSON).
    pub fn new(bindings: &BTreeMap<&str, Value>) -> Bound {
        let made = bindings.iter().try_fold(
            cel::Context::with_env(env()),
            |mut context, (name, value)| {
                context.add_variable_from_value((*name).to_owned(), to_cel(value)?);
                Ok(context)
            },
        );
        Bound(made)
    }
}

/// The contracts in force: checked, in file order, indexed by trigger.
#[derive(Clone, Debug, Default)]
pub struct Contracts {
    all: Vec<Contract>,
    by_trigger: BTreeMap<Trigger, Vec<usize>>,
}

/// Why a set of contracts is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// Two contracts of one name.
    #[error("two contracts are named {0:?}")]
    Duplicate(String),
    /// Too many.
    #[error("{0} contracts, over {MAX_CONTRACTS}")]
    TooMany(usize),
    /// The contracts on one trigger cost too much together.
    #[error(
        "the contracts on {trigger} may cost {cost} per entry together, over {MAX_TRIGGER_COST}"
    )]
    TooCostly {
        /// The trigger.
        trigger: String,
        /// Their cost.
        cost: u64,
    },
}

impl Contracts {
    /// The set of `contracts`, in their order.
    ///
    /// # Errors
    /// [`SetError`]: a name twice, too many, or a trigger whose contracts
    /// cost too much together.
    pub fn new(contracts: Vec<Contract>) -> Result<Contracts, SetError> {
        if contracts.len() > MAX_CONTRACTS {
            return Err(SetError::TooMany(contracts.len()));
        }
        let mut by_trigger: BTreeMap<Trigger, Vec<usize>> = BTreeMap::new();
        let mut names = std::collections::BTreeSet::new();
        for (i, c) in contracts.iter().enumerate() {
            if !names.insert(c.spec.name.as_str()) {
                return Err(SetError::Duplicate(c.spec.name.clone()));
            }
            by_trigger.entry(c.trigger.clone()).or_default().push(i);
        }
        for (trigger, indices) in &by_trigger {
            let cost = indices
                .iter()
                .map(|&i| contracts[i].checked.cost)
                .fold(0u64, u64::saturating_add);
            if cost > MAX_TRIGGER_COST {
                return Err(SetError::TooCostly {
                    trigger: trigger.to_string(),
                    cost,
                });
            }
        }
        Ok(Contracts {
            all: contracts,
            by_trigger,
        })
    }

    /// Every contract, in file order.
    pub fn all(&self) -> &[Contract] {
        &self.all
    }

    /// The contracts on `trigger`, in file order.
    pub fn on<'a>(&'a self, trigger: &Trigger) -> impl Iterator<Item = &'a Contract> + 'a {
        self.by_trigger
            .get(trigger)
            .into_iter()
            .flatten()
            .map(|&i| &self.all[i])
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// The contracts on `trigger` that fire with `bindings`, in file order:
    /// each whose condition holds, and each whose evaluation failed (a
    /// failure is recorded, never skipped silently); those whose condition
    /// is false are left out.
    pub fn fire<'a>(
        &'a self,
        trigger: &Trigger,
        bindings: &BTreeMap<&str, Value>,
    ) -> Vec<Fired<'a>> {
        let bound = Bound::new(bindings);
        self.on(trigger)
            .filter_map(|contract| match contract.holds_in(&bound) {
                Ok(false) => None,
                Ok(true) => Some(Fired {
                    contract,
                    outcome: Ok(()),
                }),
                Err(e) => Some(Fired {
                    contract,
                    outcome: Err(e),
                }),
            })
            .collect()
    }
}

/// A contract that fired on an event: its condition held, or its
/// evaluation failed.
#[derive(Debug)]
pub struct Fired<'a> {
    /// The contract.
    pub contract: &'a Contract,
    /// `Ok` if its condition held; the evaluation's error if it failed.
    pub outcome: Result<(), EvalError>,
}

/// `value` as the contract language sees it: every JSON integer an `int`
/// (the language has no `uint`, and serde would make a positive one that),
/// no floats, no nulls.
fn to_cel(value: &Value) -> Result<cel::Value, EvalError> {
    Ok(match value {
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => cel::Value::Int(n.as_i64().ok_or(EvalError::Value)?),
        Value::String(s) => cel::Value::from(s.as_str()),
        Value::Array(items) => {
            cel::Value::from(items.iter().map(to_cel).collect::<Result<Vec<_>, _>>()?)
        }
        Value::Object(fields) => {
            // A null field is a field the record lacks (`has()` is false).
            let mut map = std::collections::HashMap::with_capacity(fields.len());
            for (k, v) in fields.iter().filter(|(_, v)| !v.is_null()) {
                map.insert(k.clone(), to_cel(v)?);
            }
            cel::Value::from(map)
        }
        Value::Null => return Err(EvalError::Value),
    })
}

/// SHA-256 of `spec`'s canonical JSON: its fields in declaration order,
/// absent ones left out, compact.
fn spec_hash(spec: &ContractSpec) -> [u8; 32] {
    let mut hasher = Sha256::new();
    // Writing into a hasher cannot fail, and the spec is strings and a
    // number: serializing it cannot either.
    let _ = serde_json::to_writer(HashWriter(&mut hasher), spec);
    hasher.finalize().into()
}

/// A SHA-256 as an `io::Write`.
struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Folds a message onto one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
