//! the planner's language models. the model proposes, the verifier decides:
//! nothing here executes anything.
//!
//! - [`schema`]: the llm-facing schema, derived from the plan types.
//! - [`prompt`]: system message, worked examples, feedback turns.
//! - [`local`] (feature `local`): llama.cpp + llguidance, loaded per request.
//! - [`remote`]: openai-compatible chat completions with a json schema.
//! - [`gbnf`]: the draft schema as a GBNF grammar for llama.cpp servers.
//! - [`planner`]: intent → verified plan, with feedback retries.
//! - [`model_file`]: the default model's download and cache.

#[cfg(feature = "local")]
pub mod local;
#[cfg(feature = "local")]
pub mod model_file;
#[cfg(feature = "local")]
pub mod prefix_cache;
pub mod fidelity;
pub mod gbnf;
pub mod planner;
pub mod prompt;
pub mod remote;
pub mod schema;

use policy_verifier::Policy;

use crate::code::Code;

use prompt::Prompt;

/// what a backend produced for one prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// the draft json text.
    pub text: String,
    /// tokens of the prompt.
    pub prompt_tokens: u64,
    /// tokens the model generated (forced tokens included).
    pub completion_tokens: u64,
    /// wall time of the generation, in ms.
    pub millis: u64,
}

/// a planner backend: one prompt in, one draft out.
pub trait Backend {
    /// `local` or `remote`.
    fn name(&self) -> &'static str;
    /// the model, as the audit log records it.
    fn model(&self) -> String;
    /// a planning request starts: per-request limits (the remote
    /// backend's deadline) count from here, not from the backend's first
    /// use, so a backend that serves many requests (`llmsh shell`, the
    /// benchmark) gives each the same time.
    fn begin(&mut self) {}
    /// generates a draft for `prompt` under the draft schema of `policy`.
    fn generate(
        &mut self,
        prompt: &Prompt,
        policy: &Policy,
        opts: &GenOptions,
    ) -> Result<Generation, LlmError>;
}

/// how to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenOptions {
    /// most tokens to spend, prompt and completion together (the rest of
    /// the session's token budget).
    pub max_tokens: u64,
    /// 0 is greedy (deterministic); retries sample a little to leave a rut.
    pub temperature: f32,
    /// the sampler's seed.
    pub seed: u64,
    /// the session's tier: the schema offers only the ops it may run.
    pub tier: policy_verifier::Tier,
}

/// why a backend could not produce a draft.
#[cfg_attr(
    not(feature = "local"),
    allow(
        dead_code,
        reason = "download and model errors come from the local backend"
    )
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmError {
    /// the session's token budget is spent (`budget.tokens`).
    Budget {
        /// tokens the request needed so far.
        used: u64,
        /// the session's budget.
        budget: u64,
    },
    /// the model could not be fetched or failed its hash check.
    Download(String),
    /// the model could not be loaded or run.
    Model(String),
    /// the remote endpoint failed or answered nonsense; the code says how
    /// (`remote.connect`, `remote.timeout`, `remote.deadline`, `remote.http`,
    /// `remote.too_large`, `remote.json`, `remote.shape`).
    Remote(Code, String),
    /// a backend was asked for but is not configured or not built in.
    Config(String),
}

impl LlmError {
    /// the stable error code.
    pub fn code(&self) -> Code {
        match self {
            LlmError::Budget { .. } => Code::BudgetTokens,
            LlmError::Download(_) => Code::ModelDownload,
            LlmError::Model(_) => Code::ModelLoad,
            LlmError::Remote(code, _) => *code,
            LlmError::Config(_) => Code::BackendConfig,
        }
    }

    /// the error in the cli's json error form.
    pub fn to_input_error(&self) -> policy_verifier::json::InputError {
        self.code().err(self.to_string())
    }
}

impl std::fmt::Display for LlmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LlmError::Budget { used, budget } => {
                write!(f, "the planner needs more than {budget} tokens (used {used}); the session's token budget is spent")
            }
            LlmError::Download(m)
            | LlmError::Model(m)
            | LlmError::Remote(_, m)
            | LlmError::Config(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for LlmError {}
