//! the remote backend: an openai-compatible `/chat/completions` endpoint
//! (llama.cpp's server, vllm, ollama, hosted apis) asked for json under the
//! draft schema through `response_format: {type: json_schema}`. the answer
//! is still parsed and verified like a local one: a server that ignores the
//! schema gets its draft rejected, not trusted.

use std::time::{Duration, Instant};

use policy_verifier::Policy;
use serde_json::{json, Value};

use super::prompt::Prompt;
use super::{schema, Backend, GenOptions, Generation, LlmError};

/// where and what to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// the api base, e.g. `http://127.0.0.1:8080/v1`; `/chat/completions` is appended.
    pub endpoint: String,
    /// the model name the server knows.
    pub model: String,
    /// a bearer token, if the server wants one.
    pub api_key: Option<String>,
    /// per-request timeout.
    pub timeout: Duration,
}

impl RemoteConfig {
    /// from flags, falling back to `LLMSH_ENDPOINT`, `LLMSH_MODEL`,
    /// `LLMSH_API_KEY`; none when no endpoint is named anywhere.
    pub fn from_flags_or_env(
        endpoint: Option<&str>,
        model: Option<&str>,
        key: Option<&str>,
    ) -> Option<RemoteConfig> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let endpoint = endpoint
            .map(str::to_string)
            .or_else(|| env("LLMSH_ENDPOINT"))?;
        Some(RemoteConfig {
            endpoint,
            model: model
                .map(str::to_string)
                .or_else(|| env("LLMSH_MODEL"))
                .unwrap_or_else(|| "default".into()),
            api_key: key.map(str::to_string).or_else(|| env("LLMSH_API_KEY")),
            timeout: Duration::from_secs(120),
        })
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
}

impl RemoteBackend {
    /// a client for `cfg`; no connection is made until the first request.
    pub fn new(cfg: RemoteConfig) -> RemoteBackend {
        let agent = ureq::AgentBuilder::new().timeout(cfg.timeout).build();
        RemoteBackend { cfg, agent }
    }

    /// the request body for `prompt`.
    pub fn body(&self, prompt: &Prompt, policy: &Policy, opts: &GenOptions) -> Value {
        let messages: Vec<Value> = prompt
            .messages
            .iter()
            .map(|(r, c)| json!({"role": r.name(), "content": c}))
            .collect();
        json!({
            "model": self.cfg.model,
            "messages": messages,
            "temperature": opts.temperature,
            "seed": opts.seed,
            "max_tokens": opts.max_tokens.min(1024),
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "llm_os_plan_draft", "strict": true, "schema": schema::draft_schema(policy, opts.tier, &prompt.numbers)},
            },
        })
    }
}

impl Backend for RemoteBackend {
    fn name(&self) -> &'static str {
        "remote"
    }

    fn model(&self) -> String {
        format!("{}@{}", self.cfg.model, self.cfg.endpoint)
    }

    fn generate(
        &mut self,
        prompt: &Prompt,
        policy: &Policy,
        opts: &GenOptions,
    ) -> Result<Generation, LlmError> {
        let start = Instant::now();
        let mut req = self
            .agent
            .post(&self.cfg.url())
            .set("content-type", "application/json");
        if let Some(k) = &self.cfg.api_key {
            req = req.set("authorization", &format!("Bearer {k}"));
        }
        let resp = match req.send_json(self.body(prompt, policy, opts)) {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                let short: String = text.chars().take(300).collect();
                return Err(LlmError::Remote(format!(
                    "`{}` answered http {code}: {short}",
                    self.cfg.url()
                )));
            }
            Err(e) => {
                return Err(LlmError::Remote(format!(
                    "cannot reach `{}`: {e}",
                    self.cfg.url()
                )))
            }
        };
        let v: Value = resp.into_json().map_err(|e| {
            LlmError::Remote(format!(
                "`{}` answered with invalid json: {e}",
                self.cfg.url()
            ))
        })?;
        let text = v
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                LlmError::Remote("the answer has no `choices[0].message.content`".into())
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
