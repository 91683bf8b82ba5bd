//! Writing a file that holds a secret (a token, an AccessToken, a Link
//! file): mode 0600, `-` for standard output, the target checked before
//! the secret is made, and the message after it on standard error when the
//! file is a stream. `token create`, `token issue` and `link generate`
//! share it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::cli::args::{Cli, Output};
use crate::cli::{CmdResult, Code, Failure};
use skupper_token_cli::user_file::OutputTarget;

/// Where a secret goes, checked before it is made.
pub(super) struct SecretFile {
    file: PathBuf,
    /// `None`: standard output.
    target: Option<OutputTarget>,
}

impl SecretFile {
    /// Checks `file` (`-`: standard output) for `command` (`token create`)
    /// writing `what` (`the token`): `-o json|yaml` with standard output
    /// is a usage error (standard output carries the secret), as is a path
    /// that can only name a directory; a path that cannot be examined is a
    /// storage error.
    pub(super) fn resolve(
        cli: &Cli,
        file: &Path,
        command: &str,
        what: &str,
    ) -> CmdResult<SecretFile> {
        if file.as_os_str() == "-" {
            if cli.output != Output::Text {
                return Err(Failure::new(
                    Code::Usage,
                    format!(
                        "-o json|yaml cannot be used with '{command} -': standard output carries {what}"
                    ),
                )
                .hint(format!("write {what} to a file: '{command} FILE -o json'")));
            }
            return Ok(SecretFile {
                file: file.to_owned(),
                target: None,
            });
        }
        let target = OutputTarget::resolve(file).map_err(|e| {
            let code = if e.is_bad_path() {
                Code::Usage
            } else {
                Code::Storage
            };
            Failure::new(code, e).context(format!("cannot write {what}"))
        })?;
        Ok(SecretFile {
            file: file.to_owned(),
            target: Some(target),
        })
    }

    /// Writes `text` (mode 0600). On failure, `undo(failure)` runs (to void
    /// what was made for the file) and its failure is returned.
    pub(super) fn write(
        &self,
        text: &str,
        what: &str,
        undo: impl FnOnce(Failure) -> Failure,
    ) -> CmdResult {
        match &self.target {
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| {
                        undo(
                            Failure::new(Code::Storage, e)
                                .context(format!("cannot write {what} to standard output")),
                        )
                    })
            }
            Some(target) => target.write(text.as_bytes(), 0o600).map_err(|e| {
                let written = target.path();
                let place = if written == self.file {
                    self.file.display().to_string()
                } else {
                    format!("{} (via {})", written.display(), self.file.display())
                };
                undo(
                    Failure::new(Code::Storage, e)
                        .context(format!("cannot write {what} to {place}")),
                )
            }),
        }
    }

    /// Where it went, for messages: the path, or `standard output`.
    pub(super) fn place(&self) -> String {
        match self.target {
            None => "standard output".to_owned(),
            Some(_) => self.file.display().to_string(),
        }
    }

    /// Whether the file is a stream (standard output, a pipe, a device): a
    /// message then goes to standard error, so that nothing follows the
    /// secret there.
    pub(super) fn streamed(&self) -> bool {
        !matches!(self.target, Some(OutputTarget::Replace(_)))
    }
}
