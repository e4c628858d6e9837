//! the local backend: a gguf model run by llama.cpp (llama-cpp-2), every
//! token constrained by llguidance to the draft schema. dormant until a
//! request needs it: the model is loaded on first use, in this process,
//! and goes away with it.
//!
//! the decoding loop is ours rather than llama.cpp's sampler chain so that
//! forced tokens (`{"reason":"`, `"op":"`, ...) are fed without sampling and
//! the token budget is counted exactly.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use policy_verifier::{Policy, Tier};
use toktrie::TokEnv;

use super::prompt::Prompt;
use super::{model_file, prefix_cache, schema, Backend, GenOptions, Generation, LlmError};

/// context window: the prompt (~1.2k tokens) plus feedback turns and a plan.
const N_CTX: u32 = 4096;
/// most tokens one draft may take; a plan of 4 actions needs ~120.
const MAX_COMPLETION: u64 = 400;
/// prompt tokens per decode call.
const N_BATCH: usize = 512;

/// llama.cpp's global state: initialised once per process.
static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

fn backend() -> Result<&'static LlamaBackend, LlmError> {
    BACKEND
        .get_or_init(|| {
            // llama.cpp logs every tensor on load; llmsh's stderr is for people.
            llama_cpp_2::send_logs_to_tracing(
                llama_cpp_2::LogOptions::default().with_logs_enabled(false),
            );
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LlmError::Model(format!("cannot start llama.cpp: {e}")))
}

/// what a loaded model keeps between requests of one process.
struct Loaded {
    model: LlamaModel,
    /// the gguf's path: its identity keys the prefix cache.
    path: PathBuf,
    tok_env: TokEnv,
    factory: ParserFactory,
}

/// a gguf model under llguidance.
pub struct LocalBackend {
    path: Option<PathBuf>,
    /// a model llmsh fetches by name (the default one when no path is given).
    known: Option<&'static model_file::Known>,
    name: String,
    loaded: Option<Loaded>,
    /// tokens generated and their decode time, for tokens/s.
    pub stats: Throughput,
}

/// generation speed, summed over a backend's requests.
#[derive(Debug, Default, Clone, Copy)]
pub struct Throughput {
    /// sampled tokens (forced ones excluded).
    pub sampled: u64,
    /// forced tokens fed without sampling.
    pub forced: u64,
    /// prompt tokens evaluated.
    pub prompt: u64,
    /// time in the completion loop, ms.
    pub gen_ms: u64,
    /// time evaluating prompts, ms.
    pub prompt_ms: u64,
    /// prompt tokens loaded from the prefix cache instead of evaluated.
    pub cached: u64,
    /// requests whose prefix came from the cache.
    pub prefix_hits: u64,
}

impl LocalBackend {
    /// a backend for `path`, or for the default model (fetched on first use).
    pub fn new(path: Option<&Path>) -> LocalBackend {
        // `--model NAME` names a model llmsh fetches (`gemma3-270m`), unless
        // a file of that name exists
        let known = match path {
            None => Some(&model_file::SMOLLM2),
            Some(p) if !p.exists() => p.to_str().and_then(model_file::find),
            Some(_) => None,
        };
        let name = match (known, path) {
            (Some(k), _) => k.name.to_string(),
            (None, Some(p)) => p.file_stem().map_or_else(
                || p.display().to_string(),
                |s| s.to_string_lossy().into_owned(),
            ),
            (None, None) => model_file::SMOLLM2.name.to_string(),
        };
        LocalBackend {
            path: if known.is_some() { None } else { path.map(Path::to_path_buf) },
            known,
            name,
            loaded: None,
            stats: Throughput::default(),
        }
    }

    fn load(&mut self) -> Result<(), LlmError> {
        if self.loaded.is_none() {
            let path = match (&self.path, self.known) {
                (Some(p), _) => p.clone(),
                (None, Some(k)) => model_file::ensure(k)?,
                (None, None) => model_file::ensure_default_model()?,
            };
            if !path.is_file() {
                return Err(LlmError::Model(format!(
                    "model file `{}` does not exist",
                    path.display()
                )));
            }
            let t = Instant::now();
            let model = LlamaModel::load_from_file(backend()?, &path, &LlamaModelParams::default())
                .map_err(|e| LlmError::Model(format!("cannot load `{}`: {e}", path.display())))?;
            let tok_env = LlamaSampler::llguidance_tok_env(&model);
            let mut factory = engine(&tok_env)
                .map_err(|e| LlmError::Model(format!("cannot build the grammar engine: {e}")))?;
            factory.quiet();
            trace(&format!(
                "model, vocabulary and grammar engine loaded in {} ms",
                t.elapsed().as_millis()
            ));
            self.loaded = Some(Loaded {
                model,
                path,
                tok_env,
                factory,
            });
        }
        Ok(())
    }
}

/// chat messages rendered with the model's own template (chatml as a
/// fallback); `answer` opens the assistant's turn.
fn render(model: &LlamaModel, messages: &[(super::prompt::Role, String)], answer: bool) -> String {
    let chat: Result<Vec<LlamaChatMessage>, _> = messages
        .iter()
        .map(|(r, c)| LlamaChatMessage::new(r.name().to_string(), c.clone()))
        .collect();
    if let (Ok(tmpl), Ok(chat)) = (model.chat_template(None), chat) {
        if let Ok(s) = model.apply_chat_template(&tmpl, &chat, answer) {
            return s;
        }
    }
    let mut s = String::new();
    for (r, c) in messages {
        s.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", r.name(), c));
    }
    if answer {
        s.push_str("<|im_start|>assistant\n");
    }
    s
}

/// the prompt's tokens and where its cacheable prefixes end (ascending
/// token counts, each short of the whole prompt). a prefix counts only when
/// its own tokens are the prompt's first tokens, so a cached prefix never
/// changes the tokens the model sees.
fn tokens_and_splits(model: &LlamaModel, prompt: &Prompt) -> (String, Vec<LlamaToken>, Vec<usize>) {
    let text = render(model, &prompt.messages, true);
    let toks = model.vocab().tokenize(text.as_bytes(), true, true);
    let mut splits: Vec<usize> = Vec::new();
    for &cut in &prompt.cache_points {
        let Some(msgs) = prompt.messages.get(..cut) else { break };
        if cut == 0 || cut >= prompt.messages.len() {
            continue;
        }
        let prefix = render(model, msgs, false);
        if !text.starts_with(&prefix) {
            break;
        }
        let pre = model.vocab().tokenize(prefix.as_bytes(), true, true);
        let longer = splits.last().is_none_or(|l| pre.len() > *l);
        if longer && pre.len() < toks.len() && toks.starts_with(&pre) {
            splits.push(pre.len());
        } else {
            break;
        }
    }
    (text, toks, splits)
}

/// llguidance for `tok_env`. (its own forced tokens need a canonical
/// tokenizer, which the llama vocabulary env is not; the loop below forces
/// bytes through the model's tokenizer instead.)
fn engine(tok_env: &TokEnv) -> Result<ParserFactory, String> {
    ParserFactory::new_simple(tok_env).map_err(|e| e.to_string())
}

/// phase timings on stderr when `LLMSH_TRACE` is set.
fn trace(msg: &str) {
    if std::env::var_os("LLMSH_TRACE").is_some() {
        eprintln!("llmsh: trace: {msg}");
    }
}

/// a compiled grammar for the draft schema, ready to match tokens.
pub fn matcher(
    factory: &ParserFactory,
    policy: &Policy,
    tier: Tier,
    numbers: &[u64],
) -> Result<Matcher, LlmError> {
    let grammar =
        TopLevelGrammar::from_json_schema(schema::local_grammar_schema(policy, tier, numbers));
    let parser = factory
        .create_parser(grammar)
        .map_err(|e| LlmError::Model(format!("grammar: {e}")))?;
    Ok(Matcher::new(Ok(parser)))
}

/// a tiny deterministic rng (xorshift64*), enough to sample a token.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        ((x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32) / ((1u64 << 24) as f32)
    }
}

/// picks a token among those the mask allows: argmax at temperature 0,
/// else a softmax sample.
fn pick(
    logits: &[f32],
    allowed: impl Fn(u32) -> bool,
    temperature: f32,
    rng: &mut Rng,
) -> Option<u32> {
    let cands: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            u32::try_from(i)
                .ok()
                .filter(|t| allowed(*t))
                .map(|t| (t, *l))
        })
        .collect();
    let best = cands.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1))?;
    if temperature <= 0.0 || cands.len() == 1 {
        return Some(best.0);
    }
    let weights: Vec<f32> = cands
        .iter()
        .map(|(_, l)| ((l - best.1) / temperature).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    let mut r = rng.next_f32() * total;
    for ((t, _), w) in cands.iter().zip(&weights) {
        if r < *w {
            return Some(*t);
        }
        r -= w;
    }
    Some(best.0)
}

/// feeds `tokens` to the context at `pos`, logits for the last only.
fn feed(ctx: &mut LlamaContext<'_>, tokens: &[u32], pos: &mut i32) -> Result<(), LlmError> {
    let mut batch = LlamaBatch::new(N_BATCH, 1);
    for chunk in tokens.chunks(N_BATCH) {
        batch.clear();
        for (i, t) in chunk.iter().enumerate() {
            let tok = LlamaToken(i32::try_from(*t).unwrap_or(0));
            batch
                .add(tok, *pos, &[0], i + 1 == chunk.len())
                .map_err(|e| LlmError::Model(format!("batch: {e}")))?;
            *pos += 1;
        }
        ctx.decode(&mut batch)
            .map_err(|e| LlmError::Model(format!("decode: {e}")))?;
    }
    Ok(())
}

impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn model(&self) -> String {
        self.name.clone()
    }

    fn generate(
        &mut self,
        prompt: &Prompt,
        policy: &Policy,
        opts: &GenOptions,
    ) -> Result<Generation, LlmError> {
        let start = Instant::now();
        self.load()?;
        let Some(loaded) = self.loaded.as_ref() else {
            return Err(LlmError::Model("model not loaded".into()));
        };
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(8) as i32;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(N_CTX))
            .with_n_batch(N_BATCH as u32)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let params_key = format!("n_ctx={N_CTX} n_batch={N_BATCH} threads={threads}");
        let new_ctx = || {
            loaded
                .model
                .new_context(backend()?, params.clone())
                .map_err(|e| LlmError::Model(format!("cannot create a context: {e}")))
        };
        let mut ctx = new_ctx()?;
        let (text, llama_toks, splits) = tokens_and_splits(&loaded.model, prompt);
        if std::env::var_os("LLMSH_DEBUG_PROMPT").is_some() {
            eprintln!("llmsh: prompt as the model sees it:\n{text}");
        }
        let prompt_toks: Vec<u32> = llama_toks
            .iter()
            .map(|t| u32::try_from(t.0).unwrap_or(0))
            .collect();
        let n_prompt = prompt_toks.len() as u64;
        if n_prompt >= opts.max_tokens {
            return Err(LlmError::Budget {
                used: n_prompt,
                budget: opts.max_tokens,
            });
        }
        if n_prompt + 64 > u64::from(N_CTX) {
            return Err(LlmError::Model(format!(
                "the prompt takes {n_prompt} tokens; the context holds {N_CTX}"
            )));
        }
        let mut pos = 0i32;
        // each cacheable prefix is fed as a segment of its own (or loaded
        // from the cache), then the rest: the same computation with the
        // cache, without it, or with any of its files missing.
        let cache_dir = prefix_cache::dir();
        let keys: Vec<Option<String>> = splits
            .iter()
            .map(|n| {
                if prefix_cache::disabled() {
                    None
                } else {
                    prefix_cache::key(&loaded.path, &params_key, llama_toks.get(..*n).unwrap_or(&[]))
                }
            })
            .collect();
        let t = Instant::now();
        let mut have = 0usize;
        for (n, key) in splits.iter().zip(&keys).rev() {
            let Some(key) = key else { continue };
            match prefix_cache::load(&mut ctx, &cache_dir, key, llama_toks.get(..*n).unwrap_or(&[])) {
                prefix_cache::Load::Hit => {
                    have = *n;
                    break;
                }
                prefix_cache::Load::Miss => {}
                prefix_cache::Load::Corrupt => {
                    trace("a prefix cache file was unusable; removed, rebuilt");
                    ctx = new_ctx()?;
                }
            }
        }
        let cached = have as u64;
        if have > 0 {
            pos = i32::try_from(have).unwrap_or(i32::MAX);
            trace(&format!(
                "{have} prefix tokens loaded from the cache in {} ms",
                t.elapsed().as_millis()
            ));
        }
        for (n, key) in splits.iter().zip(&keys) {
            if *n <= have {
                continue;
            }
            feed(&mut ctx, prompt_toks.get(have..*n).unwrap_or(&[]), &mut pos)?;
            have = *n;
            if let Some(key) = key {
                if let Err(e) = prefix_cache::save(&ctx, &cache_dir, key, llama_toks.get(..*n).unwrap_or(&[])) {
                    trace(&format!("the prefix cache was not saved: {e}"));
                }
            }
        }
        feed(&mut ctx, prompt_toks.get(have..).unwrap_or(&[]), &mut pos)?;
        let prompt_ms = start.elapsed().as_millis() as u64;
        trace(&format!(
            "{n_prompt} prompt tokens ({cached} from the cache) ready in {prompt_ms} ms"
        ));
        let gen_start = Instant::now();

        let t = Instant::now();
        let mut m = matcher(&loaded.factory, policy, opts.tier, &prompt.numbers)?;
        trace(&format!(
            "grammar compiled in {} ms",
            t.elapsed().as_millis()
        ));
        let trie = loaded.tok_env.tok_trie();
        let mut rng = Rng(opts.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut out: Vec<u32> = Vec::new();
        let (mut sampled, mut forced) = (0u64, 0u64);
        let limit = MAX_COMPLETION.min(opts.max_tokens - n_prompt);
        let vocab = loaded.model.vocab();
        if let Some(prefix) = &prompt.answer_prefix {
            // the answer's forced start, if the grammar takes all of it
            let toks: Vec<u32> = vocab
                .tokenize(prefix.as_bytes(), false, false)
                .into_iter()
                .map(|t| u32::try_from(t.0).unwrap_or(0))
                .collect();
            let fits = m.deep_clone().try_consume_tokens(&toks).unwrap_or(0) == toks.len();
            if fits && !toks.is_empty() && (toks.len() as u64) < limit {
                m.consume_tokens(&toks)
                    .map_err(|e| LlmError::Model(format!("grammar: {e}")))?;
                feed(&mut ctx, &toks, &mut pos)?;
                forced += toks.len() as u64;
                out.extend_from_slice(&toks);
            } else {
                trace("the answer prefix does not fit the grammar; ignored");
            }
        }
        while !m.is_stopped() {
            // bytes the grammar forces (`{"reason":"`): tokenized by
            // the model's own tokenizer, checked by the grammar, fed in one batch.
            let ff = m.compute_ff_bytes();
            let forced_toks: Vec<u32> = if ff.is_empty() {
                Vec::new()
            } else {
                vocab
                    .tokenize(&ff, false, false)
                    .into_iter()
                    .map(|t| u32::try_from(t.0).unwrap_or(0))
                    .collect()
            };
            let n_ok = if forced_toks.is_empty() {
                0
            } else {
                let mut probe = m.deep_clone();
                probe.try_consume_tokens(&forced_toks).unwrap_or(0)
            };
            let step: Vec<u32> = if n_ok > 0 {
                forced += n_ok as u64;
                forced_toks
                    .get(..n_ok)
                    .map(<[u32]>::to_vec)
                    .unwrap_or_default()
            } else {
                let mask = m
                    .compute_mask()
                    .map_err(|e| LlmError::Model(format!("grammar: {e}")))?;
                let logits = ctx.get_logits_ith(-1);
                let Some(tok) = pick(logits, |t| mask.is_allowed(t), opts.temperature, &mut rng)
                else {
                    return Err(LlmError::Model("the grammar allows no token".into()));
                };
                if trie.eos_tokens().contains(&tok) {
                    break;
                }
                sampled += 1;
                crate::ui::progress::token();
                vec![tok]
            };
            if out.len() as u64 + step.len() as u64 > limit {
                let used = n_prompt + out.len() as u64 + step.len() as u64;
                if limit < MAX_COMPLETION {
                    return Err(LlmError::Budget {
                        used,
                        budget: opts.max_tokens,
                    });
                }
                return Err(LlmError::Model(format!(
                    "the draft did not end within {MAX_COMPLETION} tokens"
                )));
            }
            m.consume_tokens(&step)
                .map_err(|e| LlmError::Model(format!("grammar: {e}")))?;
            if crate::ui::progress::cancelled() {
                return Err(LlmError::Model("planning cancelled (ctrl-c)".into()));
            }
            out.extend_from_slice(&step);
            if m.is_stopped() {
                break;
            }
            feed(&mut ctx, &step, &mut pos)?;
        }
        let gen_ms = gen_start.elapsed().as_millis() as u64;
        trace(&format!(
            "{sampled} sampled + {forced} forced tokens in {gen_ms} ms"
        ));
        self.stats.sampled += sampled;
        self.stats.forced += forced;
        self.stats.prompt += n_prompt - cached;
        self.stats.cached += cached;
        self.stats.prefix_hits += u64::from(cached > 0);
        self.stats.gen_ms += gen_ms;
        self.stats.prompt_ms += prompt_ms;
        let text = String::from_utf8_lossy(&trie.decode(&out)).into_owned();
        Ok(Generation {
            text,
            prompt_tokens: n_prompt,
            completion_tokens: out.len() as u64,
            millis: start.elapsed().as_millis() as u64,
        })
    }
}

/// the draft schema compiled for a tokenizer (the fuzz tests' entry).
#[cfg(test)]
fn grammar_compiles(tok_env: &TokEnv, policy: &Policy) -> Result<Matcher, LlmError> {
    let mut factory = engine(tok_env)
        .map_err(|e| LlmError::Model(format!("cannot build the grammar engine: {e}")))?;
    factory.quiet();
    matcher(&factory, policy, Tier::Admin, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_verifier::json;
    use policy_verifier::DEFAULT_POLICY;

    /// random walks through the grammar over a byte-level vocabulary: every
    /// output the matcher lets finish is a draft that llmsh completes into a
    /// plan `json::parse_plan` accepts (the grammar is never looser than the
    /// parser). byte tokens reach every string the grammar admits.
    #[test]
    fn pbt_grammar_admits_only_plans_the_parser_accepts() {
        let env = toktrie::ApproximateTokEnv::single_byte_env();
        let base = grammar_compiles(&env, &DEFAULT_POLICY).expect("grammar compiles");
        let trie = env.tok_trie();
        let envelope = schema::Envelope {
            request_id: 1,
            session: "ops".into(),
        };
        let mut rng = Rng(0x5eed);
        let mut finished = 0;
        let mut ops = std::collections::BTreeSet::new();
        for walk in 0..400 {
            let mut m = base.deep_clone();
            let mut out: Vec<u32> = Vec::new();
            for _ in 0..1200 {
                if m.is_stopped() {
                    break;
                }
                let mask = m.compute_mask().expect("mask");
                let allowed: Vec<u32> = (0..trie.vocab_size() as u32)
                    .filter(|t| mask.is_allowed(*t))
                    .collect();
                assert!(
                    !allowed.is_empty(),
                    "walk {walk}: dead end after {:?}",
                    String::from_utf8_lossy(&trie.decode(&out))
                );
                // end as soon as allowed, and favour closing brackets and
                // digits late in a walk so that walks finish.
                let eos = allowed
                    .iter()
                    .copied()
                    .find(|t| trie.eos_tokens().contains(t));
                if let Some(e) = eos {
                    if rng.next_f32() < 0.9 {
                        m.consume_token(e).expect("eos");
                        break;
                    }
                }
                let closing: Vec<u32> = allowed
                    .iter()
                    .copied()
                    .filter(|t| matches!(trie.decode(&[*t]).as_slice(), b"\"" | b"]" | b"}"))
                    .collect();
                let tok = if out.len() > 60 && !closing.is_empty() && rng.next_f32() < 0.5 {
                    closing[(rng.next_f32() * closing.len() as f32) as usize % closing.len()]
                } else {
                    allowed[(rng.next_f32() * allowed.len() as f32) as usize % allowed.len()]
                };
                if trie.eos_tokens().contains(&tok) {
                    break;
                }
                m.consume_token(tok).expect("consume");
                out.push(tok);
            }
            let text = String::from_utf8_lossy(&trie.decode(&out)).into_owned();
            if !m.is_accepting().unwrap_or(false) {
                continue;
            }
            finished += 1;
            let plan = schema::complete(&text, &envelope);
            assert!(
                plan.is_ok(),
                "grammar admitted `{text}` but the parser says {plan:?}"
            );
            if let Ok(p) = plan {
                for a in &p.actions {
                    ops.insert(a.kind().name());
                }
                // and it round-trips through the plan's own json form.
                let again = json::parse_plan(schema::plan_text(&p).as_bytes());
                assert_eq!(again.as_ref(), Ok(&p));
            }
        }
        assert!(finished >= 100, "only {finished} walks finished");
        assert!(ops.len() >= 8, "walks reached only {ops:?}");
    }

    /// the grammar rejects what the parser rejects: unknown ops, extra
    /// fields, out-of-range numbers, wrong workers.
    #[test]
    fn grammar_rejects_bad_drafts() {
        let env = toktrie::ApproximateTokEnv::single_byte_env();
        let base = grammar_compiles(&env, &DEFAULT_POLICY).expect("grammar compiles");
        let accepts = |s: &str| {
            let mut m = base.deep_clone();
            let toks: Vec<u32> = s.bytes().map(u32::from).collect();
            m.validate_tokens(&toks).is_ok_and(|n| n == toks.len()) && {
                let _ = m.consume_tokens(&toks);
                m.is_accepting().unwrap_or(false)
            }
        };
        assert!(accepts(
            r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":16}]}"#
        ));
        assert!(!accepts(
            r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":257}]}"#
        ));
        assert!(!accepts(
            r#"{"reason":"r","actions":[{"op":"memory.grant","pd":"worker4","pages":16}]}"#
        ));
        assert!(!accepts(
            r#"{"reason":"r","actions":[{"op":"memory.wipe","pd":"worker1"}]}"#
        ));
        assert!(!accepts(
            r#"{"reason":"r","actions":[{"op":"system.query"}],"request_id":5}"#
        ));
        assert!(
            !accepts(r#"{"reason": "r","actions":[{"op":"system.query"}]}"#),
            "no free whitespace"
        );
        assert!(!accepts(r#"{"reason":"r","actions":[]}"#));
        assert!(!accepts(
            r#"{"reason":"r","actions":[{"op":"timer.set_periodic","pd":"worker0","period_ms":0}]}"#
        ));
        assert!(!accepts(
            r#"{"reason":"r","actions":[{"op":"timer.set_periodic","pd":"worker0","period_us":20000}]}"#
        ));
        assert!(accepts(
            r#"{"reason":"r","actions":[{"op":"timer.set_periodic","pd":"worker0","period_ms":20}]}"#
        ));
    }
}
