//! Fuzz targets for what the gateway parses from other parties: envelopes
//! (`envelope::open`), the asset and medical body schemas (`Op::parse`),
//! JWE payloads (`jwe::inspect`), IPS bundles (`bundle::validate`) and
//! receipts as `xgate audit verify-receipt` reads them.
//!
//! Structured fuzzing with proptest, on the stable toolchain: each target
//! mutates the seeds in `fuzz/corpus/<target>/` and generates arbitrary
//! inputs; `XGATE_FUZZ_CASES` sets the cases per target (`docs/fuzzing.md`).

#[path = "../../../fuzz/mutate.rs"]
mod mutate;

mod bodies;
mod envelope;
mod medical;
mod receipt;

use proptest::strategy::Strategy;
use proptest::test_runner::{TestCaseError, TestError, TestRunner};

/// Runs `property` on `cases()` values of `strategy`; on failure, panics
/// with the shrunk input, ready to be added to the corpus.
pub fn check<S: Strategy>(strategy: S, property: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(mutate::config());
    match runner.run(&strategy, property) {
        Ok(()) => {}
        Err(TestError::Fail(why, input)) => panic!("{why}\nminimal failing input: {input:#?}"),
        Err(TestError::Abort(why)) => panic!("aborted: {why}"),
    }
}
