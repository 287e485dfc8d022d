//! What the contracts in force cost the commit thread per entry (issue 25;
//! docs/performance.md, section 18): every contract on an entry's trigger
//! is evaluated there, in log order.
//!
//! ```text
//! cargo bench -p xgate --bench contracts
//! ```
//!
//! The event is a `record.send`'s (`envelope:record.send`, binding `entry`
//! only), the contracts the routing rules of `tests/perf/contracts.sh`
//! (three comparisons and a prefix test, all false on the entry):
//!
//! - `contracts/bind`: the entry's bindings made into the language's
//!   values, once per event ([`Bound::new`]);
//! - `contracts/holds/N`: N contracts evaluated on one event, its bindings
//!   made once, as `acts::run` does (N = 1, 10, 100);
//! - `contracts/holds_unshared/10`: the same ten, each making the bindings
//!   again (what evaluating them one by one with [`Contract::holds`]
//!   costs): the saving of sharing them.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion};
use serde_json::{Value, json};
use xgate_server::contracts::{Bound, Contract, ContractSpec};
use xgate_server::registry::Registry;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `n` routing rules on `envelope:record.send`, none true of [`entry`].
fn contracts(n: usize) -> Vec<Contract> {
    let registry = Registry::from_agencies(Vec::new()).expect("an empty registry");
    (0..n)
        .map(|i| {
            let spec = ContractSpec {
                name: format!("route-{i}"),
                on: "envelope:record.send".into(),
                when: format!(
                    "entry.from == \"treasury\" && entry.to == \"gsa\" && \
                     entry.kind == \"record.send\" && entry.jti.startsWith(\"never-{i}-\")"
                ),
                act: "escalate".into(),
                to: None,
                deadline: None,
                after_hours: None,
            };
            Contract::load(&spec, &registry).expect("a contract")
        })
        .collect()
}

/// A `record.send` entry's bindings, as `apply::triggers` makes them.
fn entry() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([(
        "entry",
        json!({"index": 123_456, "kind": "record.send", "from": "treasury", "to": "gsa",
               "jti": "Xk3v9QeR2mT8pLwZ4cYb1A", "time": 1_796_000_000}),
    )])
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let bindings = entry();
    c.bench_function("contracts/bind", |b| {
        b.iter(|| black_box(Bound::new(black_box(&bindings))));
    });
    let mut group = c.benchmark_group("contracts/holds");
    for n in [1, 10, 100] {
        let set = contracts(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &set, |b, set| {
            b.iter(|| {
                let bound = Bound::new(&bindings);
                set.iter()
                    .filter(|c| c.holds_in(&bound).expect("evaluates"))
                    .count()
            });
        });
    }
    group.finish();
    let set = contracts(10);
    c.bench_function("contracts/holds_unshared/10", |b| {
        b.iter(|| {
            set.iter()
                .filter(|c| c.holds(&bindings).expect("evaluates"))
                .count()
        });
    });
    c.final_summary();
}
