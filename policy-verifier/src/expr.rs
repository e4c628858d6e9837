//! the invariant language: state invariants written as data in the policy
//! file (`[invariants]`), e.g. `count(w, !w.running) <= 2`.
//!
//! the parser turns text into a fixed-capacity AST (no heap, no recursion
//! beyond [`MAX_HEIGHT`], no panic on any input; an error gives the byte
//! position). the AST is evaluated over a `Domain` by `crate::custom`, so the
//! verifier PD and the Z3 proofs run one interpreter. this module depends on
//! `core` alone: `build.rs` compiles it too and writes the parsed AST of
//! `system/policy.toml` into the verifier PD.
//!
//! grammar (lowest precedence first; `=>` is right-associative, comparisons
//! do not chain):
//!
//! ```text
//! expr    := or ( "=>" expr )?
//! or      := and ( ("||" | "or") and )*
//! and     := cmp ( ("&&" | "and") cmp )*
//! cmp     := sum ( ("<" | "<=" | ">" | ">=" | "==" | "!=") sum )?
//! sum     := product ( ("+" | "-") product )*        a - b is max(a - b, 0)
//! product := unary ( "*" unary )*
//! unary   := ("!" | "not") unary | atom
//! atom    := NUMBER | "true" | "false" | "(" expr ")"
//!          | ("all" | "any" | "count" | "sum") "(" VAR "," expr ")"
//!          | VAR "." FIELD | "worker" INDEX "." FIELD | GLOBAL
//! ```
//!
//! fields: `running`, `timer` (a periodic timer is set; booleans), `priority`,
//! `budget_us`, `period_us`, `pages`, `timer_period_us` (0 without a timer).
//! globals: `workers` (their number), `pool_pages` and the limits
//! `quota_pages`, `priority_ceiling`, `cpu_util_permille`, `budget_min_us`,
//! `period_max_us`, `timer_min_us`, `timer_max_us`, `page_size`.
//! `all`/`any` take a boolean body, `count` a boolean body (an integer
//! result), `sum` an integer body. integers are exact: the parser rejects an
//! expression whose value could reach 2^127, so the PD's u128 arithmetic and
//! the unbounded integers of Z3 agree on every input.

use core::fmt;

/// most nodes in one expression.
pub const MAX_NODES: usize = 48;
/// deepest nesting of the AST (and of the parser's recursion).
pub const MAX_HEIGHT: usize = 24;
/// most quantifiers nested inside each other.
pub const MAX_VARS: usize = 3;
/// longest source text in bytes.
pub const MAX_SOURCE: usize = 1024;
/// integer values must stay below 2^MAX_BITS, so u128 holds them exactly.
pub const MAX_BITS: u32 = 128;

/// a field of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// running or stopped (boolean).
    Running,
    /// a periodic timer is set (boolean).
    Timer,
    /// priority.
    Priority,
    /// cpu budget per period, µs.
    BudgetUs,
    /// period, µs.
    PeriodUs,
    /// pages held.
    Pages,
    /// timer period, µs; 0 without a timer.
    TimerPeriodUs,
}

impl Field {
    /// every field.
    pub const ALL: [Field; 7] = [
        Field::Running,
        Field::Timer,
        Field::Priority,
        Field::BudgetUs,
        Field::PeriodUs,
        Field::Pages,
        Field::TimerPeriodUs,
    ];

    /// the name in the language.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Running => "running",
            Field::Timer => "timer",
            Field::Priority => "priority",
            Field::BudgetUs => "budget_us",
            Field::PeriodUs => "period_us",
            Field::Pages => "pages",
            Field::TimerPeriodUs => "timer_period_us",
        }
    }

    /// boolean or integer.
    pub const fn ty(self) -> Ty {
        match self {
            Field::Running | Field::Timer => Ty::Bool,
            _ => Ty::Int,
        }
    }
}

/// a number that is not a worker field: the worker count, the pool, a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// the number of workers.
    Workers,
    /// pages in the pool (state).
    PoolPages,
    /// `limits.quota_pages`.
    QuotaPages,
    /// `limits.priority_ceiling`.
    PriorityCeiling,
    /// `limits.cpu_util_permille`.
    CpuUtilPermille,
    /// `limits.budget_min_us`.
    BudgetMinUs,
    /// `limits.period_max_us`.
    PeriodMaxUs,
    /// `limits.timer_min_us`.
    TimerMinUs,
    /// `limits.timer_max_us`.
    TimerMaxUs,
    /// `limits.page_size`.
    PageSize,
}

impl Global {
    /// every global.
    pub const ALL: [Global; 10] = [
        Global::Workers,
        Global::PoolPages,
        Global::QuotaPages,
        Global::PriorityCeiling,
        Global::CpuUtilPermille,
        Global::BudgetMinUs,
        Global::PeriodMaxUs,
        Global::TimerMinUs,
        Global::TimerMaxUs,
        Global::PageSize,
    ];

    /// the name in the language.
    pub const fn name(self) -> &'static str {
        match self {
            Global::Workers => "workers",
            Global::PoolPages => "pool_pages",
            Global::QuotaPages => "quota_pages",
            Global::PriorityCeiling => "priority_ceiling",
            Global::CpuUtilPermille => "cpu_util_permille",
            Global::BudgetMinUs => "budget_min_us",
            Global::PeriodMaxUs => "period_max_us",
            Global::TimerMinUs => "timer_min_us",
            Global::TimerMaxUs => "timer_max_us",
            Global::PageSize => "page_size",
        }
    }
}

/// whose field: a quantified variable (by nesting level, 0 outermost) or a
/// worker by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// the variable of the quantifier at this nesting level.
    Bound(u8),
    /// `worker{i}`.
    Worker(u8),
}

/// a binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-` (saturating at 0)
    Sub,
    /// `*`
    Mul,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `&&`
    And,
    /// `||`
    Or,
    /// `=>`
    Implies,
}

impl BinOp {
    /// the operator as written.
    pub const fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::And => "&&",
            BinOp::Or => "||",
            BinOp::Implies => "=>",
        }
    }

    /// binding strength for printing (higher binds tighter).
    const fn prec(self) -> u8 {
        match self {
            BinOp::Implies => 1,
            BinOp::Or => 2,
            BinOp::And => 3,
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne => 4,
            BinOp::Add | BinOp::Sub => 5,
            BinOp::Mul => 6,
        }
    }
}

/// a quantifier over all workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quant {
    /// every worker satisfies the body.
    All,
    /// some worker does.
    Any,
    /// how many do (an integer).
    Count,
    /// the sum of an integer body.
    Sum,
}

impl Quant {
    /// the keyword.
    pub const fn name(self) -> &'static str {
        match self {
            Quant::All => "all",
            Quant::Any => "any",
            Quant::Count => "count",
            Quant::Sum => "sum",
        }
    }
}

/// boolean or integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// true or false.
    Bool,
    /// a non-negative integer.
    Int,
}

/// one node; children are indices of earlier nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// an integer literal.
    Num(u64),
    /// `true` or `false`.
    Lit(bool),
    /// a global number.
    Global(Global),
    /// a worker field.
    Field(Var, Field),
    /// `!a`
    Not(u8),
    /// `a op b`
    Bin(BinOp, u8, u8),
    /// `q(var, body)`; the variable is `Var::Bound(level)`.
    Quant(Quant, u8, u8),
}

/// a parsed expression: nodes in post-order, the root last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expr {
    nodes: [Node; MAX_NODES],
    len: u8,
}

impl Expr {
    /// the expression `true`.
    pub const TRUE: Expr = Expr { nodes: [Node::Lit(true); MAX_NODES], len: 1 };

    /// builds an expression from nodes (the form `build.rs` writes). it is
    /// not checked: a malformed one evaluates to false, never panics.
    pub const fn from_nodes(nodes: [Node; MAX_NODES], len: u8) -> Expr {
        Expr { nodes, len }
    }

    /// the nodes in use.
    pub fn nodes(&self) -> &[Node] {
        self.nodes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// the index of the root, if any.
    pub fn root(&self) -> Option<usize> {
        usize::from(self.len).checked_sub(1)
    }

    /// node `i`.
    pub fn node(&self, i: usize) -> Option<Node> {
        self.nodes().get(i).copied()
    }

    /// whether the nodes form an expression of type `ty` that the parser
    /// could have produced: children before parents, types, variables bound,
    /// height and integer size within bounds. the interpreter evaluates
    /// nothing else (a hand-built AST that fails this is false).
    pub fn well_formed(&self, ty: Ty, n_workers: usize) -> bool {
        #[derive(Clone, Copy)]
        struct Info {
            ty: Ty,
            bits: u32,
            height: usize,
            // 1 + the deepest variable level used free, 0 for none.
            free: usize,
        }
        let mut info = [Info { ty: Ty::Bool, bits: 0, height: 0, free: 0 }; MAX_NODES];
        let n = u128::try_from(n_workers).unwrap_or(u128::MAX);
        for (i, node) in self.nodes().iter().enumerate() {
            let child = |c: u8| if usize::from(c) < i { info.get(usize::from(c)).copied() } else { None };
            let leaf = |ty, bits| Some(Info { ty, bits, height: 1, free: 0 });
            let me = match *node {
                Node::Num(v) => leaf(Ty::Int, bits_of(u128::from(v))),
                Node::Lit(_) => leaf(Ty::Bool, 1),
                Node::Global(Global::Workers) => leaf(Ty::Int, bits_of(n)),
                Node::Global(_) => leaf(Ty::Int, 64),
                Node::Field(Var::Worker(w), f) => (usize::from(w) < n_workers).then_some(Info {
                    ty: f.ty(),
                    bits: 64,
                    height: 1,
                    free: 0,
                }),
                Node::Field(Var::Bound(l), f) => (usize::from(l) < MAX_VARS).then_some(Info {
                    ty: f.ty(),
                    bits: 64,
                    height: 1,
                    free: usize::from(l).saturating_add(1),
                }),
                Node::Not(a) => child(a).filter(|a| a.ty == Ty::Bool).map(|a| Info { height: a.height.saturating_add(1), ..a }),
                Node::Bin(op, a, b) => match (child(a), child(b)) {
                    (Some(a), Some(b)) => {
                        let (operand, ty, bits) = match op {
                            BinOp::Add => (Ty::Int, Ty::Int, a.bits.max(b.bits).saturating_add(1)),
                            BinOp::Sub => (Ty::Int, Ty::Int, a.bits),
                            BinOp::Mul => (Ty::Int, Ty::Int, a.bits.saturating_add(b.bits)),
                            BinOp::And | BinOp::Or | BinOp::Implies => (Ty::Bool, Ty::Bool, 1),
                            _ => (Ty::Int, Ty::Bool, 1),
                        };
                        (a.ty == operand && b.ty == operand).then_some(Info {
                            ty,
                            bits,
                            height: a.height.max(b.height).saturating_add(1),
                            free: a.free.max(b.free),
                        })
                    }
                    _ => None,
                },
                Node::Quant(q, l, body) => child(body).and_then(|b| {
                    let l = usize::from(l);
                    let (want, ty, bits) = match q {
                        Quant::All | Quant::Any => (Ty::Bool, Ty::Bool, 1),
                        Quant::Count => (Ty::Bool, Ty::Int, bits_of(n)),
                        Quant::Sum => (Ty::Int, Ty::Int, b.bits.saturating_add(bits_of(n))),
                    };
                    (l < MAX_VARS && b.ty == want && b.free <= l.saturating_add(1)).then_some(Info {
                        ty,
                        bits,
                        height: b.height.saturating_add(1),
                        free: b.free.min(l),
                    })
                }),
            };
            let Some(me) = me.filter(|m| m.bits <= MAX_BITS && m.height <= MAX_HEIGHT) else {
                return false;
            };
            if let Some(slot) = info.get_mut(i) {
                *slot = me;
            }
        }
        self.root().and_then(|r| info.get(r)).is_some_and(|r| r.ty == ty && r.free == 0)
    }

    fn push(&mut self, n: Node, pos: usize) -> Result<u8, ParseError> {
        let i = self.len;
        let slot = self.nodes.get_mut(usize::from(i)).ok_or(ParseError { pos, kind: ErrorKind::TooManyNodes })?;
        *slot = n;
        self.len = i.saturating_add(1);
        Ok(i)
    }

    fn fmt_node(&self, f: &mut fmt::Formatter<'_>, i: usize, depth: usize) -> fmt::Result {
        const VARS: [&str; MAX_VARS] = ["w", "v", "u"];
        let var = |l: u8| VARS.get(usize::from(l)).copied().unwrap_or("w");
        if depth > MAX_HEIGHT {
            return f.write_str("…");
        }
        let next = depth.saturating_add(1);
        match self.node(i) {
            None => f.write_str("?"),
            Some(Node::Num(v)) => write!(f, "{v}"),
            Some(Node::Lit(b)) => write!(f, "{b}"),
            Some(Node::Global(g)) => f.write_str(g.name()),
            Some(Node::Field(Var::Bound(l), fld)) => write!(f, "{}.{}", var(l), fld.name()),
            Some(Node::Field(Var::Worker(w), fld)) => write!(f, "worker{w}.{}", fld.name()),
            Some(Node::Not(a)) => {
                f.write_str("!")?;
                self.fmt_child(f, usize::from(a), 7, next)
            }
            Some(Node::Bin(op, a, b)) => {
                // left-associative chains print without parentheses on the left;
                // `=>` is right-associative.
                let p = op.prec();
                let (lp, rp) = if op == BinOp::Implies { (p.saturating_add(1), p) } else { (p, p.saturating_add(1)) };
                let lp = if p == 4 { 5 } else { lp };
                self.fmt_child(f, usize::from(a), lp, next)?;
                write!(f, " {} ", op.symbol())?;
                self.fmt_child(f, usize::from(b), rp, next)
            }
            Some(Node::Quant(q, l, body)) => {
                write!(f, "{}({}, ", q.name(), var(l))?;
                self.fmt_node(f, usize::from(body), next)?;
                f.write_str(")")
            }
        }
    }

    fn fmt_child(&self, f: &mut fmt::Formatter<'_>, i: usize, min_prec: u8, depth: usize) -> fmt::Result {
        let prec = match self.node(i) {
            Some(Node::Bin(op, ..)) => op.prec(),
            _ => 8,
        };
        if prec < min_prec {
            f.write_str("(")?;
            self.fmt_node(f, i, depth)?;
            f.write_str(")")
        } else {
            self.fmt_node(f, i, depth)
        }
    }
}

/// the canonical text: parsing it gives the same expression back.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.root() {
            Some(r) => self.fmt_node(f, r, 0),
            None => f.write_str("?"),
        }
    }
}

/// what is wrong with an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// the text is empty.
    Empty,
    /// longer than [`MAX_SOURCE`] bytes.
    TooLong,
    /// a character that starts no token.
    UnexpectedChar,
    /// the text ends where more was expected.
    UnexpectedEnd,
    /// something else was expected here (what).
    Expected(&'static str),
    /// text after a complete expression.
    Trailing,
    /// a number above 2^64 - 1.
    NumberTooLarge,
    /// a name that is no variable, worker or global.
    UnknownName,
    /// `x.f` where `f` is no worker field.
    UnknownField,
    /// `workerN` with N at least the worker count.
    UnknownWorker,
    /// a quantifier variable that shadows another, or a reserved word.
    BadVariable,
    /// quantifiers nested more than [`MAX_VARS`] deep.
    TooManyVars,
    /// an integer where a boolean belongs, or the reverse (what was expected).
    Type(Ty),
    /// more than [`MAX_NODES`] nodes.
    TooManyNodes,
    /// nested deeper than [`MAX_HEIGHT`].
    TooDeep,
    /// an integer that could reach 2^128.
    MayOverflow,
}

/// a parse error at byte `pos` of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    /// 0-based byte offset.
    pub pos: usize,
    /// what is wrong.
    pub kind: ErrorKind,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at column {}: ", self.pos.saturating_add(1))?;
        match self.kind {
            ErrorKind::Empty => f.write_str("empty expression"),
            ErrorKind::TooLong => write!(f, "expression longer than {MAX_SOURCE} bytes"),
            ErrorKind::UnexpectedChar => f.write_str("unexpected character"),
            ErrorKind::UnexpectedEnd => f.write_str("unexpected end of expression"),
            ErrorKind::Expected(what) => write!(f, "expected {what}"),
            ErrorKind::Trailing => f.write_str("unexpected text after the expression"),
            ErrorKind::NumberTooLarge => f.write_str("number larger than 2^64 - 1"),
            ErrorKind::UnknownName => f.write_str(
                "unknown name (a quantified variable, workerN, workers, pool_pages or a limit)",
            ),
            ErrorKind::UnknownField => f.write_str(
                "unknown field (running, timer, priority, budget_us, period_us, pages, timer_period_us)",
            ),
            ErrorKind::UnknownWorker => f.write_str("no such worker"),
            ErrorKind::BadVariable => f.write_str("variable name is taken (a keyword, global, worker or outer variable)"),
            ErrorKind::TooManyVars => write!(f, "quantifiers nested more than {MAX_VARS} deep"),
            ErrorKind::Type(Ty::Bool) => f.write_str("expected a boolean, found an integer"),
            ErrorKind::Type(Ty::Int) => f.write_str("expected an integer, found a boolean"),
            ErrorKind::TooManyNodes => write!(f, "expression has more than {MAX_NODES} parts"),
            ErrorKind::TooDeep => write!(f, "expression nested more than {MAX_HEIGHT} deep"),
            ErrorKind::MayOverflow => f.write_str("this integer could reach 2^128; the verifier computes exactly below that"),
        }
    }
}

/// parses `src` for a system of `n_workers` workers; the top level must be
/// a boolean.
pub fn parse(src: &str, n_workers: usize) -> Result<Expr, ParseError> {
    parse_typed(src, n_workers, Ty::Bool)
}

/// parses `src` as an expression of type `ty` (`Ty::Int` for a number a
/// query or report wants).
pub fn parse_typed(src: &str, n_workers: usize, ty: Ty) -> Result<Expr, ParseError> {
    if src.len() > MAX_SOURCE {
        return Err(ParseError { pos: MAX_SOURCE, kind: ErrorKind::TooLong });
    }
    let mut p = Parser {
        src: src.as_bytes(),
        pos: 0,
        out: Expr { nodes: [Node::Lit(false); MAX_NODES], len: 0 },
        vars: [&[]; MAX_VARS],
        nvars: 0,
        n_workers,
        depth: 0,
    };
    p.skip_ws();
    if p.pos >= p.src.len() {
        return Err(ParseError { pos: 0, kind: ErrorKind::Empty });
    }
    let start = p.pos;
    let t = p.expr()?;
    p.skip_ws();
    if p.pos < p.src.len() {
        return Err(p.err(ErrorKind::Trailing));
    }
    if t.ty != ty {
        return Err(ParseError { pos: start, kind: ErrorKind::Type(ty) });
    }
    Ok(p.out)
}

/// a parsed subexpression: its node, type, a bound on its bits and its height.
#[derive(Clone, Copy)]
struct Sub {
    node: u8,
    ty: Ty,
    bits: u32,
    height: usize,
    pos: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    Num(u64),
    Ident(&'a [u8]),
    Sym(&'static str),
    End,
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    out: Expr,
    vars: [&'a [u8]; MAX_VARS],
    nvars: usize,
    n_workers: usize,
    depth: usize,
}

const SYMBOLS: [&str; 17] =
    ["=>", "<=", ">=", "==", "!=", "&&", "||", "<", ">", "!", "+", "-", "*", "(", ")", ",", "."];

fn bits_of(v: u128) -> u32 {
    128u32.saturating_sub(v.leading_zeros()).max(1)
}

impl<'a> Parser<'a> {
    fn err(&self, kind: ErrorKind) -> ParseError {
        ParseError { pos: self.pos, kind }
    }

    fn skip_ws(&mut self) {
        while self.src.get(self.pos).is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos = self.pos.saturating_add(1);
        }
    }

    /// the next token and where it ends, without consuming it.
    fn peek(&mut self) -> Result<(Tok<'a>, usize), ParseError> {
        self.skip_ws();
        let rest = self.src.get(self.pos..).unwrap_or(&[]);
        let Some(&c) = rest.first() else {
            return Ok((Tok::End, self.pos));
        };
        if c.is_ascii_digit() {
            let mut v: u64 = 0;
            let mut n = 0usize;
            for &d in rest {
                if d == b'_' {
                    n = n.saturating_add(1);
                    continue;
                }
                if !d.is_ascii_digit() {
                    break;
                }
                v = v
                    .checked_mul(10)
                    .and_then(|x| x.checked_add(u64::from(d.wrapping_sub(b'0'))))
                    .ok_or(self.err(ErrorKind::NumberTooLarge))?;
                n = n.saturating_add(1);
            }
            return Ok((Tok::Num(v), self.pos.saturating_add(n)));
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let n = rest.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
            return Ok((Tok::Ident(rest.get(..n).unwrap_or(&[])), self.pos.saturating_add(n)));
        }
        for s in SYMBOLS {
            if rest.starts_with(s.as_bytes()) {
                return Ok((Tok::Sym(s), self.pos.saturating_add(s.len())));
            }
        }
        Err(self.err(ErrorKind::UnexpectedChar))
    }

    fn next(&mut self) -> Result<Tok<'a>, ParseError> {
        let (t, end) = self.peek()?;
        self.pos = end;
        Ok(t)
    }

    /// whether the next token is one of `syms` (or the keyword `word`); consumes it if so.
    fn eat_op(&mut self, syms: &[&'static str], word: Option<&str>) -> Result<Option<&'static str>, ParseError> {
        let (t, end) = self.peek()?;
        let hit = match t {
            Tok::Sym(s) => syms.iter().copied().find(|x| *x == s),
            Tok::Ident(w) if word.is_some_and(|k| k.as_bytes() == w) => syms.first().copied(),
            _ => None,
        };
        if hit.is_some() {
            self.pos = end;
        }
        Ok(hit)
    }

    fn expect(&mut self, sym: &'static str) -> Result<(), ParseError> {
        match self.peek()? {
            (Tok::Sym(s), end) if s == sym => {
                self.pos = end;
                Ok(())
            }
            (Tok::End, _) => Err(self.err(ErrorKind::UnexpectedEnd)),
            _ => Err(self.err(ErrorKind::Expected(sym))),
        }
    }

    fn want(&self, s: &Sub, ty: Ty) -> Result<(), ParseError> {
        if s.ty == ty {
            Ok(())
        } else {
            Err(ParseError { pos: s.pos, kind: ErrorKind::Type(ty) })
        }
    }

    fn leaf(&mut self, n: Node, ty: Ty, bits: u32, pos: usize) -> Result<Sub, ParseError> {
        let node = self.out.push(n, pos)?;
        Ok(Sub { node, ty, bits, height: 1, pos })
    }

    fn bin(&mut self, op: BinOp, a: Sub, b: Sub, pos: usize) -> Result<Sub, ParseError> {
        let (operand, ty, bits) = match op {
            BinOp::Add => (Ty::Int, Ty::Int, a.bits.max(b.bits).saturating_add(1)),
            BinOp::Sub => (Ty::Int, Ty::Int, a.bits),
            BinOp::Mul => (Ty::Int, Ty::Int, a.bits.saturating_add(b.bits)),
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne => (Ty::Int, Ty::Bool, 1),
            BinOp::And | BinOp::Or | BinOp::Implies => (Ty::Bool, Ty::Bool, 1),
        };
        self.want(&a, operand)?;
        self.want(&b, operand)?;
        if bits > MAX_BITS {
            return Err(ParseError { pos, kind: ErrorKind::MayOverflow });
        }
        let height = a.height.max(b.height).saturating_add(1);
        if height > MAX_HEIGHT {
            return Err(ParseError { pos, kind: ErrorKind::TooDeep });
        }
        let node = self.out.push(Node::Bin(op, a.node, b.node), pos)?;
        Ok(Sub { node, ty, bits, height, pos: a.pos })
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth = self.depth.saturating_add(1);
        if self.depth > MAX_HEIGHT {
            return Err(self.err(ErrorKind::TooDeep));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Sub, ParseError> {
        self.enter()?;
        let a = self.or()?;
        let pos = self.pos;
        let out = if self.eat_op(&["=>"], Some("implies"))?.is_some() {
            let b = self.expr()?;
            self.bin(BinOp::Implies, a, b, pos)
        } else {
            Ok(a)
        };
        self.depth = self.depth.saturating_sub(1);
        out
    }

    fn or(&mut self) -> Result<Sub, ParseError> {
        let mut a = self.and()?;
        loop {
            self.skip_ws();
            let pos = self.pos;
            if self.eat_op(&["||"], Some("or"))?.is_none() {
                return Ok(a);
            }
            let b = self.and()?;
            a = self.bin(BinOp::Or, a, b, pos)?;
        }
    }

    fn and(&mut self) -> Result<Sub, ParseError> {
        let mut a = self.cmp()?;
        loop {
            self.skip_ws();
            let pos = self.pos;
            if self.eat_op(&["&&"], Some("and"))?.is_none() {
                return Ok(a);
            }
            let b = self.cmp()?;
            a = self.bin(BinOp::And, a, b, pos)?;
        }
    }

    fn cmp(&mut self) -> Result<Sub, ParseError> {
        let a = self.sum()?;
        self.skip_ws();
        let pos = self.pos;
        let op = match self.eat_op(&["<=", ">=", "==", "!=", "<", ">"], None)? {
            Some("<=") => BinOp::Le,
            Some(">=") => BinOp::Ge,
            Some("==") => BinOp::Eq,
            Some("!=") => BinOp::Ne,
            Some("<") => BinOp::Lt,
            Some(_) => BinOp::Gt,
            None => return Ok(a),
        };
        let b = self.sum()?;
        let out = self.bin(op, a, b, pos)?;
        self.skip_ws();
        if matches!(self.peek()?.0, Tok::Sym("<" | "<=" | ">" | ">=" | "==" | "!=")) {
            return Err(self.err(ErrorKind::Expected("no second comparison (use && to join them)")));
        }
        Ok(out)
    }

    fn sum(&mut self) -> Result<Sub, ParseError> {
        let mut a = self.product()?;
        loop {
            self.skip_ws();
            let pos = self.pos;
            let op = match self.eat_op(&["+", "-"], None)? {
                Some("+") => BinOp::Add,
                Some(_) => BinOp::Sub,
                None => return Ok(a),
            };
            let b = self.product()?;
            a = self.bin(op, a, b, pos)?;
        }
    }

    fn product(&mut self) -> Result<Sub, ParseError> {
        let mut a = self.unary()?;
        loop {
            self.skip_ws();
            let pos = self.pos;
            if self.eat_op(&["*"], None)?.is_none() {
                return Ok(a);
            }
            let b = self.unary()?;
            a = self.bin(BinOp::Mul, a, b, pos)?;
        }
    }

    fn unary(&mut self) -> Result<Sub, ParseError> {
        self.skip_ws();
        let pos = self.pos;
        if self.eat_op(&["!"], Some("not"))?.is_some() {
            self.enter()?;
            let a = self.unary()?;
            self.depth = self.depth.saturating_sub(1);
            self.want(&a, Ty::Bool)?;
            let height = a.height.saturating_add(1);
            if height > MAX_HEIGHT {
                return Err(ParseError { pos, kind: ErrorKind::TooDeep });
            }
            let node = self.out.push(Node::Not(a.node), pos)?;
            return Ok(Sub { node, ty: Ty::Bool, bits: 1, height, pos });
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Sub, ParseError> {
        self.skip_ws();
        let pos = self.pos;
        match self.next()? {
            Tok::End => Err(ParseError { pos, kind: ErrorKind::UnexpectedEnd }),
            Tok::Num(v) => self.leaf(Node::Num(v), Ty::Int, bits_of(u128::from(v)), pos),
            Tok::Sym("(") => {
                let mut e = self.expr()?;
                self.expect(")")?;
                e.pos = pos;
                Ok(e)
            }
            Tok::Sym(_) => Err(ParseError { pos, kind: ErrorKind::Expected("a number, a name or `(`") }),
            Tok::Ident(b"true") => self.leaf(Node::Lit(true), Ty::Bool, 1, pos),
            Tok::Ident(b"false") => self.leaf(Node::Lit(false), Ty::Bool, 1, pos),
            Tok::Ident(word) => {
                let quant = match word {
                    b"all" => Some(Quant::All),
                    b"any" => Some(Quant::Any),
                    b"count" => Some(Quant::Count),
                    b"sum" => Some(Quant::Sum),
                    _ => None,
                };
                if let Some(q) = quant {
                    if matches!(self.peek()?.0, Tok::Sym("(")) {
                        return self.quant(q, pos);
                    }
                }
                self.name(word, pos)
            }
        }
    }

    fn quant(&mut self, q: Quant, pos: usize) -> Result<Sub, ParseError> {
        self.expect("(")?;
        self.skip_ws();
        let vpos = self.pos;
        let Tok::Ident(var) = self.next()? else {
            return Err(ParseError { pos: vpos, kind: ErrorKind::Expected("a variable name") });
        };
        if self.nvars >= MAX_VARS {
            return Err(ParseError { pos: vpos, kind: ErrorKind::TooManyVars });
        }
        if self.reserved(var) || self.vars.iter().take(self.nvars).any(|v| *v == var) {
            return Err(ParseError { pos: vpos, kind: ErrorKind::BadVariable });
        }
        let level = self.nvars;
        if let Some(slot) = self.vars.get_mut(level) {
            *slot = var;
        }
        self.nvars = level.saturating_add(1);
        self.expect(",")?;
        self.enter()?;
        let body = self.expr();
        self.depth = self.depth.saturating_sub(1);
        self.nvars = level;
        let body = body?;
        self.expect(")")?;
        let n = u128::try_from(self.n_workers).unwrap_or(u128::MAX);
        let (want, ty, bits) = match q {
            Quant::All | Quant::Any => (Ty::Bool, Ty::Bool, 1),
            Quant::Count => (Ty::Bool, Ty::Int, bits_of(n)),
            Quant::Sum => (Ty::Int, Ty::Int, body.bits.saturating_add(bits_of(n))),
        };
        self.want(&body, want)?;
        if bits > MAX_BITS {
            return Err(ParseError { pos, kind: ErrorKind::MayOverflow });
        }
        let height = body.height.saturating_add(1);
        if height > MAX_HEIGHT {
            return Err(ParseError { pos, kind: ErrorKind::TooDeep });
        }
        let level = u8::try_from(level).unwrap_or(u8::MAX);
        let node = self.out.push(Node::Quant(q, level, body.node), pos)?;
        Ok(Sub { node, ty, bits, height, pos })
    }

    /// keywords, globals and worker names cannot be variables.
    fn reserved(&self, w: &[u8]) -> bool {
        matches!(w, b"true" | b"false" | b"all" | b"any" | b"count" | b"sum" | b"and" | b"or" | b"not" | b"implies")
            || Global::ALL.iter().any(|g| g.name().as_bytes() == w)
            || worker_index(w).is_some()
    }

    fn name(&mut self, word: &'a [u8], pos: usize) -> Result<Sub, ParseError> {
        if let Some(g) = Global::ALL.iter().copied().find(|g| g.name().as_bytes() == word) {
            let bits = if g == Global::Workers { bits_of(u128::try_from(self.n_workers).unwrap_or(u128::MAX)) } else { 64 };
            return self.leaf(Node::Global(g), Ty::Int, bits, pos);
        }
        let var = if let Some(level) = self.vars.iter().take(self.nvars).position(|v| *v == word) {
            Var::Bound(u8::try_from(level).unwrap_or(u8::MAX))
        } else if let Some(i) = worker_index(word) {
            if i >= self.n_workers {
                return Err(ParseError { pos, kind: ErrorKind::UnknownWorker });
            }
            Var::Worker(u8::try_from(i).map_err(|_| ParseError { pos, kind: ErrorKind::UnknownWorker })?)
        } else {
            return Err(ParseError { pos, kind: ErrorKind::UnknownName });
        };
        self.expect(".")?;
        self.skip_ws();
        let fpos = self.pos;
        let Tok::Ident(f) = self.next()? else {
            return Err(ParseError { pos: fpos, kind: ErrorKind::Expected("a field name") });
        };
        let Some(field) = Field::ALL.iter().copied().find(|x| x.name().as_bytes() == f) else {
            return Err(ParseError { pos: fpos, kind: ErrorKind::UnknownField });
        };
        let bits = if field.ty() == Ty::Int { 64 } else { 1 };
        self.leaf(Node::Field(var, field), field.ty(), bits, pos)
    }
}

/// `worker12` -> 12; leading zeros and other text are not worker names.
fn worker_index(w: &[u8]) -> Option<usize> {
    let digits = w.strip_prefix(b"worker")?;
    if digits.is_empty() || digits.len() > 4 || (digits.len() > 1 && digits.first() == Some(&b'0')) {
        return None;
    }
    let mut v = 0usize;
    for d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(usize::from(d.wrapping_sub(b'0')))?;
    }
    Some(v)
}
