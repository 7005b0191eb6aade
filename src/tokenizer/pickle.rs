//! A small, bounded pickle reader for nanoGPT's `meta.pkl`: plain data only (dicts, lists,
//! tuples, strings, numbers), no classes, and a budget on the values it builds. A generic
//! unpickler materialises `DUP`/memo references as copies, so a few hundred crafted bytes can
//! ask for gigabytes (found by the `meta_pkl` fuzz target); here that is an error instead.

use std::collections::HashMap;

/// A plain Python value.
#[derive(Debug, Clone, PartialEq)]
pub enum PyVal {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<PyVal>),
    Tuple(Vec<PyVal>),
    Dict(Vec<(PyVal, PyVal)>),
}

impl PyVal {
    /// Nodes plus string bytes / 16: what building a copy costs.
    fn cost(&self) -> usize {
        match self {
            PyVal::Str(s) => 1 + s.len() / 16,
            PyVal::Bytes(b) => 1 + b.len() / 16,
            PyVal::List(v) | PyVal::Tuple(v) => 1 + v.iter().map(PyVal::cost).sum::<usize>(),
            PyVal::Dict(kv) => 1 + kv.iter().map(|(k, v)| k.cost() + v.cost()).sum::<usize>(),
            _ => 1,
        }
    }
}

enum Item {
    Mark,
    Val(PyVal),
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    budget: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.data.len() - self.pos {
            return Err(format!(
                "truncated pickle: {n} bytes wanted at offset {}",
                self.pos
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<usize, String> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64) as usize)
    }

    fn spend(&mut self, cost: usize) -> Result<(), String> {
        self.budget = self.budget.checked_sub(cost).ok_or(
            "the pickle expands to more data than a meta.pkl can hold (refusing a pickle bomb)",
        )?;
        Ok(())
    }

    fn string(&mut self, n: usize) -> Result<PyVal, String> {
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|_| "a pickled string is not UTF-8".to_string())?;
        self.spend(1 + n / 16)?;
        Ok(PyVal::Str(s.to_string()))
    }
}

/// Pops the values above the topmost mark.
fn since_mark(stack: &mut Vec<Item>) -> Result<Vec<PyVal>, String> {
    let at = stack
        .iter()
        .rposition(|i| matches!(i, Item::Mark))
        .ok_or("pickle without the MARK its opcode needs")?;
    stack
        .drain(at..)
        .skip(1)
        .map(|i| match i {
            Item::Val(v) => Ok(v),
            Item::Mark => Err("nested MARK".to_string()),
        })
        .collect()
}

fn pop(stack: &mut Vec<Item>) -> Result<PyVal, String> {
    match stack.pop() {
        Some(Item::Val(v)) => Ok(v),
        _ => Err("pickle stack underflow".into()),
    }
}

fn pairs(items: Vec<PyVal>) -> Result<Vec<(PyVal, PyVal)>, String> {
    if !items.len().is_multiple_of(2) {
        return Err("SETITEMS with an odd number of items".into());
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// The value an atom opcode pushes (None, booleans, numbers, strings, bytes, empty containers),
/// reading its operand; None for every other opcode.
fn atom(op: u8, r: &mut Reader) -> Result<Option<PyVal>, String> {
    Ok(Some(match op {
        b'N' => PyVal::None,
        0x88 => PyVal::Bool(true),
        0x89 => PyVal::Bool(false),
        b'J' => PyVal::Int(i32::from_le_bytes(r.take(4)?.try_into().unwrap_or([0; 4])) as i64),
        b'K' => PyVal::Int(r.uint(1)? as i64),
        b'M' => PyVal::Int(r.uint(2)? as i64),
        0x8a => {
            let n = r.uint(1)?;
            let b = r.take(n)?;
            if n > 8 {
                return Err("an integer wider than 64 bits".into());
            }
            let mut buf = [if b.last().is_some_and(|&x| x & 0x80 != 0) {
                0xff
            } else {
                0
            }; 8];
            buf[..n].copy_from_slice(b);
            PyVal::Int(i64::from_le_bytes(buf))
        }
        b'G' => PyVal::Float(f64::from_be_bytes(r.take(8)?.try_into().unwrap_or([0; 8]))),
        b'X' => {
            let n = r.uint(4)?;
            r.string(n)?
        }
        0x8c => {
            let n = r.uint(1)?;
            r.string(n)?
        }
        0x8d => {
            let n = r.uint(8)?;
            r.string(n)?
        }
        b'C' | b'B' => {
            let n = r.uint(if op == b'C' { 1 } else { 4 })?;
            let b = r.take(n)?.to_vec();
            r.spend(1 + n / 16)?;
            PyVal::Bytes(b)
        }
        b'}' => PyVal::Dict(Vec::new()),
        b']' => PyVal::List(Vec::new()),
        b')' => PyVal::Tuple(Vec::new()),
        _ => return Ok(None),
    }))
}

/// SETITEM(S) / APPEND(S): adds the popped items to the dict or list below them.
fn extend_top(op: u8, stack: &mut Vec<Item>) -> Result<(), String> {
    let items = match op {
        b's' => {
            let v = pop(stack)?;
            let k = pop(stack)?;
            vec![k, v]
        }
        b'a' => vec![pop(stack)?],
        _ => since_mark(stack)?,
    };
    match (stack.last_mut(), op) {
        (Some(Item::Val(PyVal::Dict(d))), b's' | b'u') => d.extend(pairs(items)?),
        (Some(Item::Val(PyVal::List(l))), b'a' | b'e') => l.extend(items),
        _ => return Err("SETITEM/APPEND on something that is not a dict/list".into()),
    }
    Ok(())
}

/// BINPUT / LONG_BINPUT / MEMOIZE: stores the top of the stack in the memo.
fn memoise(
    op: u8,
    r: &mut Reader,
    stack: &[Item],
    memo: &mut HashMap<usize, PyVal>,
) -> Result<(), String> {
    let key = match op {
        b'q' => r.uint(1)?,
        b'r' => r.uint(4)?,
        _ => memo.len(),
    };
    let top = match stack.last() {
        Some(Item::Val(v)) => v.clone(),
        _ => return Err("memoising an empty stack".into()),
    };
    r.spend(top.cost())?;
    memo.insert(key, top);
    Ok(())
}

/// BINGET / LONG_BINGET / DUP: the value to push again (charged against the budget).
fn recall(
    op: u8,
    r: &mut Reader,
    stack: &[Item],
    memo: &HashMap<usize, PyVal>,
) -> Result<PyVal, String> {
    let v = if op == b'2' {
        match stack.last() {
            Some(Item::Val(v)) => v.clone(),
            _ => return Err("DUP of an empty stack".into()),
        }
    } else {
        let key = r.uint(if op == b'h' { 1 } else { 4 })?;
        memo.get(&key).cloned().ok_or("memo key not defined")?
    };
    r.spend(v.cost())?;
    Ok(v)
}

/// Reads a pickle of plain data. `budget` bounds the values built (see [`PyVal`]'s cost).
pub fn parse(data: &[u8], budget: usize) -> Result<PyVal, String> {
    if data.first() != Some(&0x80) {
        return Err(
            "not a binary pickle (protocol 2 or later, as Python 3's pickle.dump writes by default)"
                .into(),
        );
    }
    let mut r = Reader {
        data,
        pos: 0,
        budget,
    };
    let mut stack: Vec<Item> = Vec::new();
    let mut memo: HashMap<usize, PyVal> = HashMap::new();
    loop {
        let op = r.take(1)?[0];
        if let Some(v) = atom(op, &mut r)? {
            stack.push(Item::Val(v));
            continue;
        }
        let v = match op {
            0x80 => {
                r.take(1)?;
                continue;
            }
            0x95 => {
                r.take(8)?;
                continue;
            }
            b'.' => return pop(&mut stack),
            b'(' => {
                stack.push(Item::Mark);
                continue;
            }
            b't' => PyVal::Tuple(since_mark(&mut stack)?),
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut t = Vec::with_capacity(n);
                for _ in 0..n {
                    t.push(pop(&mut stack)?);
                }
                t.reverse();
                PyVal::Tuple(t)
            }
            b'q' | b'r' | 0x94 => {
                memoise(op, &mut r, &stack, &mut memo)?;
                continue;
            }
            b'h' | b'j' | b'2' => recall(op, &mut r, &stack, &memo)?,
            b'0' => {
                stack.pop();
                continue;
            }
            b'1' => {
                since_mark(&mut stack)?;
                continue;
            }
            b's' | b'u' | b'a' | b'e' => {
                extend_top(op, &mut stack)?;
                continue;
            }
            other => {
                return Err(format!(
                    "unsupported pickle opcode 0x{other:02x} at offset {}: a meta.pkl holds plain data only",
                    r.pos - 1
                ));
            }
        };
        stack.push(Item::Val(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_python_writes() {
        // pickle.dumps({'a': [1, -2, 300, 70000], 'b': ('x', None, True, 1.5)}, protocol=4)
        let p = b"\x80\x04\x952\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01J\xfe\xff\xff\xffM,\x01Jp\x11\x01\x00e\x8c\x01b\x94(\x8c\x01x\x94N\x88G?\xf8\x00\x00\x00\x00\x00\x00t\x94u.";
        let v = parse(p, 1000).unwrap();
        let want = PyVal::Dict(vec![
            (
                PyVal::Str("a".into()),
                PyVal::List(vec![
                    PyVal::Int(1),
                    PyVal::Int(-2),
                    PyVal::Int(300),
                    PyVal::Int(70000),
                ]),
            ),
            (
                PyVal::Str("b".into()),
                PyVal::Tuple(vec![
                    PyVal::Str("x".into()),
                    PyVal::None,
                    PyVal::Bool(true),
                    PyVal::Float(1.5),
                ]),
            ),
        ]);
        assert_eq!(v, want);
    }

    #[test]
    fn refuses_bombs_classes_and_truncation() {
        // DUP + TUPLE3 doubling: 40 rounds would be 3^40 nodes.
        let mut bomb = b"\x80\x02N".to_vec();
        for _ in 0..40 {
            bomb.extend_from_slice(b"22\x87");
        }
        bomb.push(b'.');
        assert!(parse(&bomb, 1 << 20).unwrap_err().contains("pickle bomb"));
        assert!(parse(b"(dp0\n.", 100).unwrap_err().contains("protocol 2"));
        let global = b"\x80\x02cos\nsystem\n.";
        assert!(
            parse(global, 100)
                .unwrap_err()
                .contains("unsupported pickle opcode 0x63")
        );
        let huge = b"\x80\x02X\xff\xff\xff\x7fabc.";
        assert!(parse(huge, 100).unwrap_err().contains("truncated"));
    }
}
