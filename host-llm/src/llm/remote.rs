//! the remote backend: an openai-compatible `/chat/completions` endpoint
//! (llama.cpp's server, llama-cpp-python, vllm, ollama, hosted apis) asked
//! for json under the draft schema. the answer is still parsed and verified
//! like a local one: a server that ignores the schema gets its draft
//! rejected, not trusted.
//!
//! - response format: `json_schema` first; a server that refuses it (llama.cpp
//!   server and llama-cpp-python answer 400/500) is asked again, and from
//!   then on, with a `grammar` (GBNF, [`super::gbnf`]) that admits exactly
//!   the compact drafts the local grammar admits, so the same gguf plans the
//!   same way served or local; one that refuses that too gets `json_object` +
//!   `schema`, which they also constrain (with free whitespace).
//!   `LLMSH_REMOTE_FORMAT` (`json_schema`, `grammar`, `json_object`) pins one.
//! - sampling is pinned (temperature as the planner asks, top_p 1, no
//!   frequency/presence/repeat penalty: a server's default repeat penalty
//!   turns "worker2" into "worker1" on the second mention); extra body
//!   fields come from `LLMSH_REMOTE_EXTRA` (a json object) for servers
//!   that need more.
//! - every call has a timeout and all calls of one request share a
//!   deadline; an answer is read through a 1 MiB cap.
//!
//! ureq, not reqwest + tokio: the planner makes one blocking call at a time
//! and needs no streaming (a draft is a few hundred tokens); ureq gives a
//! per-call timeout and a bounded body reader, and llmsh stays free of an
//! async runtime. cancellation is the deadline: no call outlives it.

use std::io::Read;
use std::time::{Duration, Instant};

use policy_verifier::Policy;

use crate::code::Code;
use serde_json::{json, Map, Value};

use super::prompt::Prompt;
use super::{gbnf, schema, Backend, GenOptions, Generation, LlmError};

/// most bytes of an answer that are read; a longer one is an error.
pub const MAX_RESPONSE_BYTES: u64 = 1 << 20;

/// the default per-call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// the default deadline of all calls of one planning request.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(180);

/// how the server is asked for json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"type":"json_schema","json_schema":{…}}` (the openai form).
    JsonSchema,
    /// a top-level `grammar` field in GBNF (llama.cpp server, llama-cpp-python).
    Grammar,
    /// `{"type":"json_object","schema":…}` (llama.cpp server, llama-cpp-python).
    JsonObject,
}

impl Format {
    /// the form to ask for when a server refuses this one.
    fn fallback(self) -> Option<Format> {
        match self {
            Format::JsonSchema => Some(Format::Grammar),
            Format::Grammar => Some(Format::JsonObject),
            Format::JsonObject => None,
        }
    }

    /// the name `LLMSH_REMOTE_FORMAT` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::JsonSchema => "json_schema",
            Format::Grammar => "grammar",
            Format::JsonObject => "json_object",
        }
    }
}

/// where and what to ask.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    /// the api base, e.g. `http://127.0.0.1:8080/v1`; `/chat/completions` is appended.
    pub endpoint: String,
    /// the model name the server knows.
    pub model: String,
    /// a bearer token, if the server wants one.
    pub api_key: Option<String>,
    /// per-call timeout (`LLMSH_REMOTE_TIMEOUT`, seconds).
    pub timeout: Duration,
    /// all calls of one request end by then (`LLMSH_REMOTE_DEADLINE`, seconds).
    pub deadline: Duration,
    /// extra body fields (`LLMSH_REMOTE_EXTRA`, a json object); they win
    /// over the pinned sampling fields, never over model, messages or format.
    pub extra: Map<String, Value>,
    /// the one format to use (`LLMSH_REMOTE_FORMAT`); none tries them in turn.
    pub format: Option<Format>,
}

/// seconds from a flag or an environment variable.
fn seconds(flag: Option<f64>, var: &str, default: Duration) -> Result<Duration, LlmError> {
    let v = match flag {
        Some(f) => Some(f),
        None => match std::env::var(var).ok().filter(|v| !v.is_empty()) {
            Some(t) => Some(t.trim().parse::<f64>().map_err(|_| {
                LlmError::Config(format!("{var} must be a number of seconds, not `{t}`"))
            })?),
            None => None,
        },
    };
    match v {
        None => Ok(default),
        Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(LlmError::Config(format!(
            "a remote timeout must be between 0 and 86400 seconds, not {s}"
        ))),
    }
}

/// the remote flags beyond endpoint, model and key.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// `--remote-timeout` seconds.
    pub timeout: Option<f64>,
    /// `--remote-deadline` seconds.
    pub deadline: Option<f64>,
}

impl RemoteConfig {
    /// from flags, falling back to `LLMSH_ENDPOINT`, `LLMSH_MODEL`,
    /// `LLMSH_API_KEY`, `LLMSH_REMOTE_TIMEOUT`, `LLMSH_REMOTE_DEADLINE`,
    /// `LLMSH_REMOTE_EXTRA`; none when no endpoint is named anywhere.
    pub fn from_flags_or_env(
        endpoint: Option<&str>,
        model: Option<&str>,
        key: Option<&str>,
        limits: Limits,
    ) -> Result<Option<RemoteConfig>, LlmError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let Some(endpoint) = endpoint.map(str::to_string).or_else(|| env("LLMSH_ENDPOINT")) else {
            return Ok(None);
        };
        let extra = match env("LLMSH_REMOTE_EXTRA") {
            None => Map::new(),
            Some(t) => match serde_json::from_str::<Value>(&t) {
                Ok(Value::Object(m)) => m,
                _ => {
                    return Err(LlmError::Config(
                        "LLMSH_REMOTE_EXTRA must be a json object, e.g. {\"top_k\":1}".into(),
                    ))
                }
            },
        };
        let format = match env("LLMSH_REMOTE_FORMAT") {
            None => None,
            Some(t) => Some(
                [Format::JsonSchema, Format::Grammar, Format::JsonObject]
                    .into_iter()
                    .find(|f| f.name() == t.trim())
                    .ok_or_else(|| {
                        LlmError::Config(format!(
                            "LLMSH_REMOTE_FORMAT must be json_schema, grammar or json_object, not `{t}`"
                        ))
                    })?,
            ),
        };
        Ok(Some(RemoteConfig {
            endpoint,
            model: model
                .map(str::to_string)
                .or_else(|| env("LLMSH_MODEL"))
                .unwrap_or_else(|| "default".into()),
            api_key: key.map(str::to_string).or_else(|| env("LLMSH_API_KEY")),
            timeout: seconds(limits.timeout, "LLMSH_REMOTE_TIMEOUT", DEFAULT_TIMEOUT)?,
            deadline: seconds(limits.deadline, "LLMSH_REMOTE_DEADLINE", DEFAULT_DEADLINE)?,
            extra,
            format,
        }))
    }

    /// the full url of the chat completions call.
    pub fn url(&self) -> String {
        let base = self.endpoint.trim_end_matches('/');
        if base.ends_with("/chat/completions") {
            base.to_string()
        } else {
            format!("{base}/chat/completions")
        }
    }
}

/// an openai-compatible chat endpoint.
pub struct RemoteBackend {
    cfg: RemoteConfig,
    agent: ureq::Agent,
    /// the format the server takes (json_schema until it refuses).
    format: Format,
    /// whether `format` was pinned: a refusal is then an error.
    pinned: bool,
    /// when the request's first call started: its deadline counts from
    /// here ([`Backend::begin`] clears it).
    started: Option<Instant>,
}

impl RemoteBackend {
    /// a client for `cfg`; no connection is made until the first request.
    pub fn new(cfg: RemoteConfig) -> RemoteBackend {
        let agent = ureq::AgentBuilder::new().build();
        RemoteBackend {
            format: cfg.format.unwrap_or(Format::JsonSchema),
            pinned: cfg.format.is_some(),
            cfg,
            agent,
            started: None,
        }
    }

    /// the request body for `prompt` in `format`; a schema the GBNF
    /// translator cannot take is sent as `json_object` instead.
    pub fn body(&self, prompt: &Prompt, policy: &Policy, opts: &GenOptions, format: Format) -> Value {
        let messages: Vec<Value> = prompt
            .messages
            .iter()
            .map(|(r, c)| json!({"role": r.name(), "content": c}))
            .collect();
        let schema = schema::draft_schema(policy, opts.tier, &prompt.numbers);
        let grammar = match format {
            Format::Grammar => gbnf::grammar(&schema).ok(),
            _ => None,
        };
        let response_format = match (format, &grammar) {
            (Format::JsonSchema, _) => Some(json!({
                "type": "json_schema",
                "json_schema": {"name": "llm_os_plan_draft", "strict": true, "schema": schema},
            })),
            (Format::Grammar, Some(_)) => None,
            (Format::Grammar | Format::JsonObject, _) => {
                Some(json!({"type": "json_object", "schema": schema}))
            }
        };
        let mut body = json!({
            "temperature": opts.temperature,
            "top_p": 1.0,
            "frequency_penalty": 0.0,
            "presence_penalty": 0.0,
            "repeat_penalty": 1.0,
            "seed": opts.seed,
            "max_tokens": opts.max_tokens.min(1024),
        });
        if let Some(o) = body.as_object_mut() {
            for (k, v) in &self.cfg.extra {
                o.insert(k.clone(), v.clone());
            }
            o.insert("model".into(), json!(self.cfg.model));
            o.insert("messages".into(), Value::Array(messages));
            // the format fields are llmsh's alone, whatever the extras say
            o.remove("response_format");
            o.remove("grammar");
            match (response_format, grammar) {
                (Some(rf), _) => o.insert("response_format".into(), rf),
                (None, Some(g)) => o.insert("grammar".into(), Value::String(g)),
                (None, None) => None,
            };
        }
        body
    }

    /// one call; `Err((status, body))` for an http error status.
    fn call(&self, body: &Value, timeout: Duration) -> Result<Result<Value, (u16, String)>, LlmError> {
        let url = self.cfg.url();
        let mut req = self
            .agent
            .post(&url)
            .timeout(timeout)
            .set("content-type", "application/json");
        if let Some(k) = &self.cfg.api_key {
            req = req.set("authorization", &format!("Bearer {k}"));
        }
        let resp = match req.send_json(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let text = bounded(r.into_reader()).unwrap_or_default();
                let short: String = String::from_utf8_lossy(&text).chars().take(300).collect();
                return Ok(Err((code, short)));
            }
            Err(ureq::Error::Transport(t)) => {
                let msg = t.to_string();
                let timed_out = msg.contains("timed out") || msg.contains("Timeout");
                return Err(if timed_out {
                    LlmError::Remote(Code::RemoteTimeout,
                        format!("`{url}` did not answer within {} s (--remote-timeout)", timeout.as_secs_f64()),
                    )
                } else {
                    LlmError::Remote(Code::RemoteConnect, format!("cannot reach `{url}`: {msg}"))
                });
            }
        };
        let bytes = bounded(resp.into_reader()).map_err(|e| match e {
            Bounded::TooLarge => LlmError::Remote(Code::RemoteTooLarge,
                format!("`{url}` answered more than {MAX_RESPONSE_BYTES} bytes; not read"),
            ),
            Bounded::Io(e) => {
                let code = if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock {
                    Code::RemoteTimeout
                } else {
                    Code::RemoteConnect
                };
                LlmError::Remote(code, format!("reading the answer of `{url}`: {e}"))
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(Ok)
            .map_err(|e| LlmError::Remote(Code::RemoteJson, format!("`{url}` answered with invalid json: {e}")))
    }
}

/// why a body could not be read.
enum Bounded {
    TooLarge,
    Io(std::io::Error),
}

/// reads at most [`MAX_RESPONSE_BYTES`].
fn bounded(r: impl Read) -> Result<Vec<u8>, Bounded> {
    let mut out = Vec::new();
    r.take(MAX_RESPONSE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(Bounded::Io)?;
    if out.len() as u64 > MAX_RESPONSE_BYTES {
        return Err(Bounded::TooLarge);
    }
    Ok(out)
}

/// whether an error status is a refusal of the `json_schema` format (the
/// servers that refuse it say so with 400, 422 or 500 and the field's name,
/// or with 500 and nothing useful).
fn refuses_format(code: u16, body: &str) -> bool {
    let b = body.to_lowercase();
    matches!(code, 400 | 422 | 500 | 501)
        && (b.contains("response_format") || b.contains("json_schema") || b.contains("schema") || code == 500)
}

impl Backend for RemoteBackend {
    fn name(&self) -> &'static str {
        "remote"
    }

    fn model(&self) -> String {
        format!("{}@{}", self.cfg.model, self.cfg.endpoint)
    }

    fn begin(&mut self) {
        self.started = None;
    }

    fn generate(
        &mut self,
        prompt: &Prompt,
        policy: &Policy,
        opts: &GenOptions,
    ) -> Result<Generation, LlmError> {
        let start = Instant::now();
        let first = *self.started.get_or_insert(start);
        let remaining = || self.cfg.deadline.saturating_sub(first.elapsed());
        let url = self.cfg.url();
        let deadline_err = || {
            LlmError::Remote(Code::RemoteDeadline,
                format!(
                    "the remote planner's deadline of {} s is spent (--remote-deadline)",
                    self.cfg.deadline.as_secs_f64()
                ),
            )
        };
        let mut v = None;
        for _ in 0..3 {
            let left = remaining();
            if left.is_zero() {
                return Err(deadline_err());
            }
            let body = self.body(prompt, policy, opts, self.format);
            let answer = match self.call(&body, self.cfg.timeout.min(left)) {
                // cut short by the deadline, not by the call's own timeout
                Err(LlmError::Remote(Code::RemoteTimeout, _)) if left < self.cfg.timeout => {
                    return Err(deadline_err())
                }
                other => other?,
            };
            match answer {
                Ok(answer) => {
                    v = Some(answer);
                    break;
                }
                Err((code, text)) if !self.pinned && refuses_format(code, &text) => {
                    match self.format.fallback() {
                        Some(f) => self.format = f,
                        None => {
                            return Err(LlmError::Remote(Code::RemoteHttp,
                                format!("`{url}` refused the json_schema, grammar and json_object forms; last: http {code}: {text}"),
                            ))
                        }
                    }
                }
                Err((code, text)) => {
                    return Err(LlmError::Remote(Code::RemoteHttp,
                        format!("`{url}` answered http {code}: {text}"),
                    ))
                }
            }
        }
        let Some(v) = v else {
            return Err(LlmError::Remote(Code::RemoteHttp,
                format!("`{url}` refused the json_schema, grammar and json_object forms"),
            ));
        };
        let text = v
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                LlmError::Remote(Code::RemoteShape,
                    "the answer has no `choices[0].message.content`".into(),
                )
            })?
            .trim()
            .to_string();
        let prompt_tokens = v
            .pointer("/usage/prompt_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let completion_tokens = v
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let used = prompt_tokens + completion_tokens;
        if used > opts.max_tokens {
            return Err(LlmError::Budget {
                used,
                budget: opts.max_tokens,
            });
        }
        Ok(Generation {
            text,
            prompt_tokens,
            completion_tokens,
            millis: start.elapsed().as_millis() as u64,
        })
    }
}
