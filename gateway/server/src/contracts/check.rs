//! The contract language's type check and cost bound: a CEL condition is
//! taken only if every name it reads is one its trigger binds, every
//! operation is defined on the types it meets, its result is a bool, and
//! its cost (the nodes an evaluation can visit, loops counted by the
//! longest list they can run over) is within [`MAX_COST`].
//!
//! CEL is checked here, not by the interpreter: `cel` evaluates
//! dynamically, and a contract that failed only on the entry that reached
//! its odd branch would fail in production. The subset taken is small on
//! purpose: strings, integers, booleans, lists, the trigger's records, the
//! comparison and logical operators, integer arithmetic (no string `+`: a
//! string never grows past what the log holds), `in`, `size`,
//! `startsWith`, `endsWith`, `contains`, `has` on optional fields, the
//! conditional, and the `all` and `exists` macros. No doubles, bytes,
//! maps, timestamps, regular expressions or functions of the clock: a
//! condition reads the log, the state and the entry's time, nothing else.

use cel::common::ast::{Expr, IdedExpr, LiteralValue, operators};

use super::schema::{Field, Type};

/// The most a condition may cost: nodes an evaluation visits, a loop's
/// body counted once per item of the longest list it may run over.
pub const MAX_COST: u64 = 200_000;

/// The most nodes a condition may have, whatever they cost.
pub const MAX_NODES: usize = 512;

/// Why a condition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// A name the trigger does not bind.
    #[error("unknown name {0:?} (this trigger binds: {1})")]
    UnknownName(String, String),
    /// A field its record does not have.
    #[error("{record} has no field {field:?} (it has: {fields})")]
    UnknownField {
        /// The record's name.
        record: &'static str,
        /// The field asked for.
        field: String,
        /// The fields it has.
        fields: String,
    },
    /// An operation on types it is not defined for.
    #[error("{op} is not defined for {args}")]
    Types {
        /// The operation.
        op: String,
        /// The types met.
        args: String,
    },
    /// Something the contract language leaves out.
    #[error("{0} is not in the contract language")]
    Unsupported(String),
    /// The condition is not a bool.
    #[error("the condition is {0}, not a bool")]
    NotBool(String),
    /// It costs too much.
    #[error("the condition may cost {0}, over the limit of {MAX_COST}")]
    TooCostly(u64),
    /// It has too many nodes.
    #[error("the condition has {0} nodes, over the limit of {MAX_NODES}")]
    TooLarge(usize),
}

/// What a check found of a condition that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Its cost bound.
    pub cost: u64,
    /// Its nodes.
    pub nodes: usize,
}

/// Checks `expr` against the names `scope` binds; it must be a bool.
///
/// # Errors
/// [`CheckError`] naming the first fault found.
pub fn check(expr: &IdedExpr, scope: &[(&'static str, Type)]) -> Result<Checked, CheckError> {
    let mut checker = Checker {
        scope: scope
            .iter()
            .map(|(n, t)| ((*n).to_owned(), t.clone()))
            .collect(),
        nodes: 0,
    };
    let (ty, cost) = checker.walk(expr)?;
    if checker.nodes > MAX_NODES {
        return Err(CheckError::TooLarge(checker.nodes));
    }
    if ty != Type::Bool {
        return Err(CheckError::NotBool(ty.to_string()));
    }
    if cost > MAX_COST {
        return Err(CheckError::TooCostly(cost));
    }
    Ok(Checked {
        cost,
        nodes: checker.nodes,
    })
}

struct Checker {
    /// Names in scope, innermost last.
    scope: Vec<(String, Type)>,
    nodes: usize,
}

impl Checker {
    /// The type of `expr` and what evaluating it may cost.
    fn walk(&mut self, expr: &IdedExpr) -> Result<(Type, u64), CheckError> {
        self.nodes += 1;
        // Stopped as soon as either bound is passed: a walk never goes
        // deeper or costs more than the bounds it enforces.
        if self.nodes > MAX_NODES {
            return Err(CheckError::TooLarge(self.nodes));
        }
        let (ty, cost) = self.node(expr)?;
        if cost > MAX_COST {
            return Err(CheckError::TooCostly(cost));
        }
        Ok((ty, cost))
    }

    /// [`Checker::walk`] of one node, its children walked.
    fn node(&mut self, expr: &IdedExpr) -> Result<(Type, u64), CheckError> {
        match &expr.expr {
            Expr::Literal(literal) => Ok((literal_type(literal)?, 1)),
            Expr::Ident(name) => self
                .scope
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, t)| (t.clone(), 1))
                .ok_or_else(|| {
                    let bound: Vec<&str> = self
                        .scope
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .filter(|n| !n.starts_with('@'))
                        .collect();
                    CheckError::UnknownName(name.clone(), bound.join(", "))
                }),
            Expr::Select(select) => {
                let (operand, cost) = self.walk(&select.operand)?;
                let field = field_of(&operand, &select.field)?;
                if select.test {
                    return if field.optional {
                        Ok((Type::Bool, cost.saturating_add(1)))
                    } else {
                        Err(CheckError::Unsupported(format!(
                            "has() on {:?}, which every such record has",
                            select.field
                        )))
                    };
                }
                Ok((field.ty.clone(), cost.saturating_add(1)))
            }
            Expr::List(list) => {
                if !list.optional_indices.is_empty() {
                    return Err(CheckError::Unsupported("an optional list element".into()));
                }
                let mut item = None;
                let mut cost: u64 = 1;
                for element in &list.elements {
                    let (ty, c) = self.walk(element)?;
                    cost = cost.saturating_add(c);
                    match &item {
                        None => item = Some(ty),
                        Some(t) if *t == ty => {}
                        Some(t) => {
                            return Err(CheckError::Types {
                                op: "a list".into(),
                                args: format!("{t} and {ty}"),
                            });
                        }
                    }
                }
                let item = item.ok_or_else(|| CheckError::Unsupported("an empty list".into()))?;
                let item = item
                    .scalar()
                    .ok_or_else(|| CheckError::Unsupported(format!("a list of {item}")))?;
                Ok((Type::List(item, list.elements.len() as u64), cost))
            }
            Expr::Call(call) => self.call(&call.func_name, call.target.as_deref(), &call.args),
            Expr::Comprehension(c) => {
                // Only `all` and `exists`: a boolean accumulator, a loop over
                // a list. Their bodies run once per item.
                let (range, range_cost) = self.walk(&c.iter_range)?;
                let Type::List(item, longest) = range else {
                    return Err(CheckError::Types {
                        op: "all() and exists()".into(),
                        args: range.to_string(),
                    });
                };
                let init = match &c.accu_init.expr {
                    Expr::Literal(LiteralValue::Boolean(_)) => Type::Bool,
                    _ => Type::Int,
                };
                if init != Type::Bool || c.iter_var2.is_some() {
                    return Err(CheckError::Unsupported(
                        "a macro other than all() and exists()".into(),
                    ));
                }
                self.scope.push((c.iter_var.clone(), Type::from(item)));
                self.scope.push((c.accu_var.clone(), Type::Bool));
                let body = (|| {
                    let (cond, cond_cost) = self.walk(&c.loop_cond)?;
                    let (step, step_cost) = self.walk(&c.loop_step)?;
                    let (result, result_cost) = self.walk(&c.result)?;
                    if cond != Type::Bool || step != Type::Bool || result != Type::Bool {
                        return Err(CheckError::Types {
                            op: "all() and exists()".into(),
                            args: "a condition that is not a bool".into(),
                        });
                    }
                    Ok((cond_cost.saturating_add(step_cost), result_cost))
                })();
                self.scope.truncate(self.scope.len() - 2);
                let (per_item, result_cost) = body?;
                let cost = range_cost
                    .saturating_add(longest.saturating_mul(per_item))
                    .saturating_add(result_cost);
                Ok((Type::Bool, cost))
            }
            Expr::Map(_) => Err(CheckError::Unsupported("a map literal".into())),
            Expr::Struct(_) => Err(CheckError::Unsupported("a message literal".into())),
            Expr::Unspecified => Err(CheckError::Unsupported("an empty expression".into())),
        }
    }

    /// The type of a call of `name` (on `target`, with `args`) and its cost.
    fn call(
        &mut self,
        name: &str,
        target: Option<&IdedExpr>,
        args: &[IdedExpr],
    ) -> Result<(Type, u64), CheckError> {
        let mut types = Vec::with_capacity(args.len() + 1);
        let mut cost: u64 = 1;
        for arg in target.into_iter().chain(args) {
            let (ty, c) = self.walk(arg)?;
            cost = cost.saturating_add(c);
            types.push(ty);
        }
        let refused = |types: &[Type]| CheckError::Types {
            op: display_op(name),
            args: types
                .iter()
                .map(Type::to_string)
                .collect::<Vec<_>>()
                .join(" and "),
        };
        use Type::{Bool, Int, Str};
        let member = target.is_some();
        let ty = match (name, types.as_slice()) {
            (operators::LOGICAL_AND | operators::LOGICAL_OR, [Bool, Bool]) => Bool,
            (operators::LOGICAL_NOT | operators::NOT_STRICTLY_FALSE, [Bool]) => Bool,
            (operators::EQUALS | operators::NOT_EQUALS, [a, b])
                if a == b && a.scalar().is_some() =>
            {
                Bool
            }
            (
                operators::LESS
                | operators::LESS_EQUALS
                | operators::GREATER
                | operators::GREATER_EQUALS,
                [Int, Int] | [Str, Str],
            ) => Bool,
            (
                operators::ADD
                | operators::SUBSTRACT
                | operators::MULTIPLY
                | operators::DIVIDE
                | operators::MODULO,
                [Int, Int],
            ) => Int,
            (operators::NEGATE, [Int]) => Int,
            (operators::CONDITIONAL, [Bool, a, b]) if a == b => a.clone(),
            (operators::IN, [a, Type::List(item, _)]) if a.scalar() == Some(*item) => Bool,
            (operators::INDEX, [Type::List(item, _), Int]) => Type::from(*item),
            ("size", [Str | Type::List(..)]) => Int,
            ("startsWith" | "endsWith" | "contains", [Str, Str]) if member => Bool,
            _ if KNOWN.contains(&name) => return Err(refused(&types)),
            _ => return Err(CheckError::Unsupported(format!("the function {name}()"))),
        };
        // Scanning a string or a list costs its length at most.
        let scan = match (name, types.first()) {
            ("startsWith" | "endsWith" | "contains", _) => super::schema::MAX_STRING,
            (operators::IN, _) => match types.get(1) {
                Some(Type::List(_, longest)) => *longest,
                _ => 1,
            },
            _ => 0,
        };
        Ok((ty, cost.saturating_add(scan)))
    }
}

/// The operators and functions the language has (for some types).
const KNOWN: &[&str] = &[
    operators::LOGICAL_AND,
    operators::LOGICAL_OR,
    operators::LOGICAL_NOT,
    operators::NOT_STRICTLY_FALSE,
    operators::EQUALS,
    operators::NOT_EQUALS,
    operators::LESS,
    operators::LESS_EQUALS,
    operators::GREATER,
    operators::GREATER_EQUALS,
    operators::ADD,
    operators::SUBSTRACT,
    operators::MULTIPLY,
    operators::DIVIDE,
    operators::MODULO,
    operators::NEGATE,
    operators::CONDITIONAL,
    operators::IN,
    operators::INDEX,
    "size",
    "startsWith",
    "endsWith",
    "contains",
];

/// The type of a literal the language takes.
fn literal_type(literal: &LiteralValue) -> Result<Type, CheckError> {
    match literal {
        LiteralValue::Boolean(_) => Ok(Type::Bool),
        LiteralValue::Int(_) => Ok(Type::Int),
        LiteralValue::String(_) => Ok(Type::Str),
        LiteralValue::UInt(_) => Err(CheckError::Unsupported("an unsigned literal (1u)".into())),
        LiteralValue::Double(_) => Err(CheckError::Unsupported("a floating-point number".into())),
        LiteralValue::Bytes(_) => Err(CheckError::Unsupported("a bytes literal".into())),
        LiteralValue::Null => Err(CheckError::Unsupported("null".into())),
    }
}

/// The field `name` of a value of type `operand`.
fn field_of<'t>(operand: &'t Type, name: &str) -> Result<&'t Field, CheckError> {
    let Type::Record(record) = operand else {
        return Err(CheckError::Types {
            op: format!(".{name}"),
            args: operand.to_string(),
        });
    };
    record
        .fields
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| CheckError::UnknownField {
            record: record.name,
            field: name.to_owned(),
            fields: record
                .fields
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// An operator as written (`_==_` is `==`).
fn display_op(name: &str) -> String {
    match name {
        operators::IN => "in".into(),
        operators::INDEX => "[]".into(),
        operators::CONDITIONAL => "?:".into(),
        operators::NEGATE => "unary -".into(),
        operators::LOGICAL_NOT => "!".into(),
        other => other.trim_matches('_').to_owned(),
    }
}
