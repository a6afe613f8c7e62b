//! What a call into the component can end in besides its answer, as one error type per call.
//!
//! A call either gives the component's answer, or the component refused in its own typed words
//! (a policy that does not parse, a record the sealer will not seal, a log that does not
//! verify), or the call was stopped before it could answer (a time or memory limit, a trap, an
//! instance broken by an earlier one). [`CallError`] holds the last two, so a caller writes one
//! `?` and matches on [`CallError::Refused`] only where the refusal changes what it does.

use crate::{PolicyError, SealError, VerifyError};
use std::convert::Infallible;
use std::fmt;

/// A call into the component that gave no answer: `E` is the component's own refusal (for calls
/// that cannot be refused, [`Infallible`]).
#[derive(Debug)]
pub enum CallError<E = Infallible> {
    /// The component answered with its error.
    Refused(E),
    /// The call was stopped (a limit, a trap), the instance could not take it, or no instance
    /// could be made; the message says which and what to do.
    Stopped(String),
}

impl CallError {
    /// The same stopped call, typed for a call whose refusal is `E`.
    pub fn widen<E>(self) -> CallError<E> {
        match self {
            CallError::Stopped(why) => CallError::Stopped(why),
            CallError::Refused(never) => match never {},
        }
    }
}

impl<E> CallError<E> {
    /// The same call with its refusal turned into another type.
    pub fn map<F>(self, f: impl FnOnce(E) -> F) -> CallError<F> {
        match self {
            CallError::Refused(e) => CallError::Refused(f(e)),
            CallError::Stopped(why) => CallError::Stopped(why),
        }
    }

    /// The component's refusal, if that is what this is.
    pub fn refusal(&self) -> Option<&E> {
        match self {
            CallError::Refused(e) => Some(e),
            CallError::Stopped(_) => None,
        }
    }
}

/// For callers to whom a refusal is an answer (a verifier's verdict, a reveal that does not
/// prove out): the component's answer or refusal, with a stopped call still an error.
pub trait Verdict<T, E> {
    fn verdict(self) -> Result<Result<T, E>, CallError>;
}

impl<T, E> Verdict<T, E> for Result<T, CallError<E>> {
    fn verdict(self) -> Result<Result<T, E>, CallError> {
        match self {
            Ok(answer) => Ok(Ok(answer)),
            Err(CallError::Refused(e)) => Ok(Err(e)),
            Err(CallError::Stopped(why)) => Err(CallError::Stopped(why)),
        }
    }
}

/// The one line that explains a refusal: the component's message, never Rust's `Debug`.
pub trait Describe {
    fn describe(&self) -> String;
}

impl Describe for PolicyError {
    fn describe(&self) -> String {
        match self {
            PolicyError::Parse((id, message)) => format!("{id}: {message}"),
            PolicyError::Data(m) => format!("data: {m}"),
            PolicyError::Input(m) => format!("input: {m}"),
            PolicyError::Evaluation(m) => format!("evaluation: {m}"),
            PolicyError::NotFound(m) => format!("not found: {m}"),
        }
    }
}

impl Describe for SealError {
    fn describe(&self) -> String {
        match self {
            SealError::InvalidKey(m) => format!("invalid key: {m}"),
            SealError::KeyMismatch(m) => format!("wrong key: {m}"),
            SealError::InvalidOrigin(m) => format!("invalid origin: {m}"),
            SealError::InvalidRecord(m) => format!("invalid record: {m}"),
            SealError::InvalidState(m) => format!("the chain cannot be continued: {m}"),
            SealError::Refused(m) => format!("refused: {m}"),
        }
    }
}

impl Describe for VerifyError {
    fn describe(&self) -> String {
        self.to_string()
    }
}

/// Proof checks and reveals refuse with a sentence.
impl Describe for String {
    fn describe(&self) -> String {
        self.clone()
    }
}

impl Describe for Infallible {
    fn describe(&self) -> String {
        match *self {}
    }
}

impl<E: Describe> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Refused(e) => f.write_str(&e.describe()),
            CallError::Stopped(why) => f.write_str(why),
        }
    }
}

impl<E: Describe + fmt::Debug> std::error::Error for CallError<E> {}
