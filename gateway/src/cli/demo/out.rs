//! Where the demo tells its story: numbered steps on standard output.

use std::io::Write;

use crate::cli::error::Error;

/// Where the story is told: numbered steps, each a first line and
/// continuation lines under it; nothing but the summary when quiet.
pub(super) struct Out<'a> {
    pub(super) stdout: &'a mut dyn Write,
    quiet: bool,
    step: usize,
}

impl<'a> Out<'a> {
    pub(super) fn new(stdout: &'a mut dyn Write, quiet: bool) -> Out<'a> {
        Out {
            stdout,
            quiet,
            step: 0,
        }
    }

    /// The number of the step being told.
    pub(super) fn step_number(&self) -> usize {
        self.step
    }

    pub(super) fn title(&mut self, text: &str) -> Result<(), Error> {
        self.line(format_args!("{text}"))?;
        self.blank()
    }

    pub(super) fn blank(&mut self) -> Result<(), Error> {
        self.line(format_args!(""))
    }

    /// Starts the next step: `NN. title  text`.
    pub(super) fn step(&mut self, title: &str, text: &str) -> Result<(), Error> {
        self.step += 1;
        let n = self.step;
        self.line(format_args!("{n:>2}. {title:<11} {text}"))
    }

    /// A further line of the current step.
    pub(super) fn more(&mut self, text: &str) -> Result<(), Error> {
        self.line(format_args!("{:16}{text}", ""))
    }

    pub(super) fn line(&mut self, args: std::fmt::Arguments<'_>) -> Result<(), Error> {
        if self.quiet {
            return Ok(());
        }
        writeln!(self.stdout, "{args}")
            .and_then(|()| self.stdout.flush())
            .map_err(Error::Stdout)
    }
}
